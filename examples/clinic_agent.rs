//! The reference clinic agent — HIPAA mode with conversation records on. A stable contract like
//! the bank agent's: used by the docs, the end-to-end tests and the benchmarks.
//!
//! Run it with `cargo run --example clinic_agent`. Environment (the bank agent's, plus records):
//! - `VOXGUARD_HOST` (default 127.0.0.1), `VOXGUARD_PORT` (default 3000), route `/`;
//! - `SWML_BASIC_AUTH_USER` / `SWML_BASIC_AUTH_PASSWORD` (generated and printed when unset);
//! - `VOXGUARD_DATA_DIR` (default `./voxguard-data`): sessions and attempt counters
//!   (`voxguard.db`), the audit trail (`audit.db`) and the encrypted records (`records.db`);
//! - `VOXGUARD_RECORDS_KEY` (base64, ≥ 32 bytes, e.g. `openssl rand -base64 32`): the records
//!   key. Required: HIPAA mode refuses to start without records, and refuses the development
//!   key the runtime would otherwise keep in the data directory;
//! - `VOXGUARD_RETENTION_<KIND>_DAYS`, and the operator API on `/records` (docs/records.md;
//!   create operators with `voxguard users add NAME --role R`).
//!
//! Demo patients by caller number (answers are only ever held as argon2id hashes):
//! `+15557770001` → Maria (`pat_001`, date of birth 1984-03-12, SSN last four 6789) and
//! `+15557770002` → Ahmed (`pat_002`, date of birth 1990-11-02, SSN last four 1234).
//!
//! Policies, all enforced by the runtime: `verify_patient` (date of birth + SSN last four)
//! locks a patient out after 3 failures, across calls; every other tool handles PHI, requires
//! the verified session and is rendered inactive until then; `reschedule_appointment` needs a
//! read-back confirmation. HIPAA mode adds a privacy prompt section, never records the call,
//! and stores the summary and transcript encrypted under the verified patient.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use voxguard::guard::{PinVault, SecretHash};
use voxguard::prelude::*;
use voxguard::{AgentError, Compliance};

/// Session flag set by a successful `verify_patient`.
pub const VERIFIED: &str = "patient_verified";

struct Patient {
    id: &'static str,
    name: &'static str,
    dob_hash: SecretHash,
    ssn4_hash: SecretHash,
}

/// One appointment of the demo schedule.
#[derive(Clone)]
struct Appointment {
    id: String,
    doctor: &'static str,
    when: String,
}

/// The demo clinic: patients by caller number, appointments and refill requests by patient.
pub struct Clinic {
    by_caller: HashMap<&'static str, Patient>,
    appointments: Mutex<HashMap<&'static str, Vec<Appointment>>>,
    refills: Mutex<Vec<(String, String)>>,
}

impl Clinic {
    /// Seed the two demo patients, hashing their answers with argon2id.
    pub fn demo() -> anyhow::Result<Self> {
        let seed = [
            (
                "+15557770001",
                "pat_001",
                "Maria",
                "1984-03-12",
                "6789",
                "APT-1001",
                "Dr. Lee",
                "2026-12-03 10:30",
            ),
            (
                "+15557770002",
                "pat_002",
                "Ahmed",
                "1990-11-02",
                "1234",
                "APT-2001",
                "Dr. Okafor",
                "2026-12-09 14:00",
            ),
        ];
        let vault = PinVault::default();
        let hash = |secret: &str| {
            vault
                .hash(secret)
                .map_err(|e| anyhow::anyhow!("hashing a demo answer failed: {e}"))
        };
        let mut by_caller = HashMap::new();
        let mut appointments = HashMap::new();
        for (caller, id, name, dob, ssn4, apt, doctor, when) in seed {
            by_caller.insert(
                caller,
                Patient {
                    id,
                    name,
                    dob_hash: hash(dob)?,
                    ssn4_hash: hash(ssn4)?,
                },
            );
            appointments.insert(
                id,
                vec![Appointment {
                    id: apt.to_string(),
                    doctor,
                    when: when.to_string(),
                }],
            );
        }
        Ok(Self {
            by_caller,
            appointments: Mutex::new(appointments),
            refills: Mutex::new(Vec::new()),
        })
    }

    fn patient(&self, id: &str) -> Option<&Patient> {
        self.by_caller.values().find(|p| p.id == id)
    }
}

#[derive(Deserialize, JsonSchema)]
struct VerifyPatient {
    /// The caller's date of birth as YYYY-MM-DD.
    #[schemars(regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))]
    dob: String,
    /// The last four digits of the caller's Social Security number.
    #[schemars(regex(pattern = r"^[0-9]{4}$"))]
    last_four_ssn: String,
}

#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

#[derive(Deserialize, JsonSchema)]
struct Reschedule {
    /// The appointment to move, e.g. APT-1001.
    #[schemars(regex(pattern = r"^APT-[0-9]{4}$"))]
    appointment_id: String,
    /// The new date as YYYY-MM-DD.
    #[schemars(regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))]
    new_date: String,
}

#[derive(Deserialize, JsonSchema)]
struct Refill {
    /// The medication to refill, as the caller named it.
    #[schemars(length(min = 2, max = 64))]
    medication: String,
}

/// The clinic agent's declaration (HIPAA mode).
pub fn build_agent(clinic: Arc<Clinic>) -> Result<Agent, AgentError> {
    Agent::builder("clinic")
        .route("/")
        .compliance(Compliance::HIPAA)
        .prompt_section(
            "Role",
            "You are the phone assistant of Example Clinic. You help verified patients with their appointments and prescription refills.",
        )
        .prompt_bullets(
            "Clinic rules",
            [
                "Verify the caller with verify_patient (date of birth and last four of the SSN) before anything about their care.",
                "Never give medical advice; offer to pass a question to the care team.",
            ],
        )
        .security_rules("Example Clinic patients' appointments and prescription refills")
        .post_prompt("Summarize the call in two sentences: what the patient needed and what was done. Do not include dates of birth or SSN digits.")
        .language(Language::new("English", "en-US", "rime.spore"))
        .hints(["appointment", "refill", "prescription"])
        .verification(
            VerificationPolicy::new()
                .max_attempts(3)
                .lockout(Duration::from_secs(15 * 60))
                .flag(VERIFIED)
                .activate(["get_appointments", "reschedule_appointment", "request_prescription_refill"]),
        )
        .tool(verify_patient(clinic.clone()))
        .tool(get_appointments(clinic.clone()))
        .tool(reschedule_appointment(clinic.clone()))
        .tool(request_prescription_refill(clinic))
        .build()
}

fn verify_patient(clinic: Arc<Clinic>) -> Tool {
    Tool::typed(
        "verify_patient",
        "Verify the caller's identity with their date of birth and the last four digits of their SSN",
        move |args: VerifyPatient, ctx: CallContext| {
            let clinic = clinic.clone();
            async move {
                let number = ctx.caller_number().unwrap_or("").to_string();
                let patient = clinic.by_caller.get(number.as_str());
                // Unknown callers are counted under their number, and hashes are still checked:
                // neither the answer nor its timing reveals who is a patient.
                let subject = patient
                    .map(|p| p.id.to_string())
                    .unwrap_or_else(|| format!("caller:{number}"));
                let verification = ctx
                    .verify_secrets(
                        &subject,
                        &[
                            (args.dob.as_str(), patient.map(|p| &p.dob_hash)),
                            (args.last_four_ssn.as_str(), patient.map(|p| &p.ssn4_hash)),
                        ],
                    )
                    .await?;
                match patient {
                    // The successful verification named the patient as the call's data
                    // subject: the summary and transcript are stored under pat_00x.
                    Some(patient) if verification.is_verified() => Ok(verification
                        .with_sentence(format!("Thank you, {}. You're verified.", patient.name))),
                    _ => Ok(verification.into_result()),
                }
            }
        },
    )
    .sensitive()
    .sensitive_args(["dob", "last_four_ssn"])
}

/// The verified patient of this call (the data subject the verification set).
async fn patient_id(ctx: &CallContext) -> Result<String, ToolError> {
    ctx.subject()
        .await?
        .ok_or_else(|| ToolError::internal("verified session without a patient"))
}

fn get_appointments(clinic: Arc<Clinic>) -> Tool {
    Tool::typed(
        "get_appointments",
        "Tell a verified patient their next appointment",
        move |_: NoArgs, ctx: CallContext| {
            let clinic = clinic.clone();
            async move {
                let id = patient_id(&ctx).await?;
                let next = clinic
                    .appointments
                    .lock()
                    .map_err(|_| ToolError::internal("appointments lock poisoned"))?
                    .get(id.as_str())
                    .and_then(|list| list.first().cloned());
                Ok(FunctionResult::new(match next {
                    Some(apt) => format!(
                        "Your next appointment is with {} on {} (appointment {}).",
                        apt.doctor, apt.when, apt.id
                    ),
                    None => "You have no upcoming appointments.".to_string(),
                }))
            }
        },
    )
    .phi()
    .requires(VERIFIED)
    .inactive()
}

fn reschedule_appointment(clinic: Arc<Clinic>) -> Tool {
    Tool::typed(
        "reschedule_appointment",
        "Move a verified patient's appointment to another date",
        move |args: Reschedule, ctx: CallContext| {
            let clinic = clinic.clone();
            async move {
                let id = patient_id(&ctx).await?;
                let mut book = clinic
                    .appointments
                    .lock()
                    .map_err(|_| ToolError::internal("appointments lock poisoned"))?;
                let Some(apt) = book
                    .get_mut(id.as_str())
                    .and_then(|list| list.iter_mut().find(|a| a.id == args.appointment_id))
                else {
                    return Ok(FunctionResult::new(
                        "I can't find that appointment on your record.",
                    ));
                };
                apt.when = format!("{} 10:00", args.new_date);
                Ok(FunctionResult::new(format!(
                    "Done: appointment {} is now on {} at 10:00.",
                    apt.id, args.new_date
                )))
            }
        },
    )
    .phi()
    .requires(VERIFIED)
    .confirm(|args: &Reschedule| {
        format!(
            "You're about to move appointment {} to {}. Please say confirm to proceed.",
            args.appointment_id, args.new_date
        )
    })
    .inactive()
}

fn request_prescription_refill(clinic: Arc<Clinic>) -> Tool {
    Tool::typed(
        "request_prescription_refill",
        "Ask the care team to refill a verified patient's prescription",
        move |args: Refill, ctx: CallContext| {
            let clinic = clinic.clone();
            async move {
                let id = patient_id(&ctx).await?;
                let known = clinic.patient(&id).is_some();
                if !known {
                    return Err(ToolError::internal("verified patient is not on file"));
                }
                clinic
                    .refills
                    .lock()
                    .map_err(|_| ToolError::internal("refill lock poisoned"))?
                    .push((id, args.medication));
                Ok(FunctionResult::new(
                    "I've sent your refill request to the care team; the pharmacy will contact you when it's ready.",
                ))
            }
        },
    )
    .phi()
    .requires(VERIFIED)
    .inactive()
}

/// Start the clinic agent from the environment and serve until SIGTERM / Ctrl-C.
pub async fn run() -> anyhow::Result<()> {
    voxguard::init_tracing();
    let data_dir =
        std::env::var("VOXGUARD_DATA_DIR").unwrap_or_else(|_| "./voxguard-data".to_string());
    let agent = build_agent(Arc::new(Clinic::demo()?))?;
    let runtime = Runtime::from_env()?;
    let production = runtime.config().production;
    // HIPAA mode refuses to start without records; VOXGUARD_RECORDS=off shows that refusal.
    let state = voxguard::State::open_from_env(&data_dir, production).await?;
    let runtime = runtime.state(state).agent(agent);
    let running = runtime.bind().await?;
    println!(
        "clinic agent listening on {}://{}/",
        running.scheme(),
        running.local_addr()
    );
    running.serve().await;
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("clinic agent: {error:#}");
        std::process::exit(1);
    }
}

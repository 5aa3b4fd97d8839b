//! The security console in a real browser (issue 16): Debian's Chromium, headless, driven by
//! its ChromeDriver over WebDriver (the `fantoccini` client), against a runtime on port 0.
//! These tests type, tab and click as an operator would: sign-in by keyboard, roles seeing only
//! their pages, a forged form refused, the emergency switch turned on and off and seen by a
//! SWAIG call in the same test, a session expiring, sign-out. Each test also takes the
//! screenshots of the pages it visits at 1280×800 and at a phone's width (390 px) and checks
//! that nothing overflows sideways at either width.
//!
//! Screenshots go to `target/tmp/console-screenshots/`, or to the directory named by
//! `VOXGUARD_CONSOLE_SCREENSHOTS` (`docs/console` refreshes the ones docs/console.md shows).
//! Without `chromium` and `chromedriver` (`apt-get install chromium chromium-driver`; or
//! `VOXGUARD_CHROMIUM` / `VOXGUARD_CHROMEDRIVER` naming them) each test says that it skips and
//! passes; when they are installed, a browser that cannot start fails the test.
//!
//! It must not reach into the console's state: everything goes through the browser, except
//! the SWAIG calls (which the platform makes, not a browser) and reading the audit trail back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{key::Key, Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::console::{desk, events, Desk};
use crate::util::Call;

/// One browser at a time: each is two processes and several threads, and the tests run on two
/// loaded cores.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The phone-width window (an iPhone 12/13/14's CSS pixels).
const PHONE: (u32, u32) = (390, 844);
/// The desktop window the issue names.
const DESKTOP: (u32, u32) = (1280, 800);

/// How long a page may take to show what a test waits for (generous: a loaded CI machine).
const WAIT: Duration = Duration::from_secs(30);

fn find_program(variable: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(variable).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|path| path.is_file())
}

/// A headless Chromium under its own ChromeDriver, both ended when this is dropped.
struct Browser {
    client: Client,
    driver: Child,
    profile: tempfile::TempDir,
    shots: PathBuf,
    driver_url: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A panicking test never closes its session: the browser is found by its own profile
        // directory (every Chromium process carries it on its command line). Never `kill` with
        // a negative pid here: procps' kill reads `-KILL -PID` in a way that signals every
        // process the user may signal.
        let _ = Command::new("pkill")
            .args([
                "-KILL",
                "-f",
                "--",
                &format!(
                    "--user-data-dir={}( |$)",
                    regex_escape(&self.profile.path().display().to_string())
                ),
            ])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `text` as a POSIX extended regular expression matching exactly it (for `pkill -f`).
fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if "\\.^$|?*+()[]{}".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The browser, or `None` (said on stderr) when this machine has none.
async fn browser(test: &str) -> Option<Browser> {
    let chromium = find_program("VOXGUARD_CHROMIUM", &["chromium", "chromium-browser"]);
    let driver = find_program("VOXGUARD_CHROMEDRIVER", &["chromedriver"]);
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        eprintln!(
            "SKIPPED {test}: no browser can run here (chromium and chromedriver not found; \
             `apt-get install chromium chromium-driver`, or set VOXGUARD_CHROMIUM and \
             VOXGUARD_CHROMEDRIVER)"
        );
        return None;
    };
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("address").port()
    };
    let mut command = Command::new(&driver);
    command
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let driver = command.spawn().expect("chromedriver starts");
    let profile = tempfile::tempdir().expect("profile dir");
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new",
                // Root in a container: Chromium's sandbox needs user namespaces it may not have.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-extensions",
                "--hide-scrollbars",
                format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                format!("--user-data-dir={}", profile.path().display()),
            ],
        },
    });
    let capabilities = match capabilities {
        Value::Object(map) => map,
        _ => unreachable!("an object"),
    };
    let url = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let client = loop {
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        match builder
            .capabilities(capabilities.clone())
            .connect(&url)
            .await
        {
            Ok(client) => break client,
            Err(error) if started.elapsed() < WAIT => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("chromium did not start under chromedriver: {error}"),
        }
    };
    let shots = std::env::var_os("VOXGUARD_CONSOLE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots"));
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    Some(Browser {
        client,
        driver,
        profile,
        shots,
        driver_url: url,
    })
}

impl Browser {
    async fn open(&self, desk: &Desk, path: &str) {
        self.client
            .goto(&desk.server.url(path))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// The path of the page shown now.
    async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("current url")
            .path()
            .to_string()
    }

    /// Wait until the page at `path` shows `text` in its body.
    async fn shows(&self, path: &str, text: &str) {
        let started = std::time::Instant::now();
        loop {
            let here = self.path().await;
            let body = self.text("body").await;
            if here == path && body.contains(text) {
                return;
            }
            assert!(
                started.elapsed() < WAIT,
                "waited for {text:?} on {path}; the browser shows {here}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    async fn type_into(&self, css: &str, text: &str) {
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"));
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    /// The links of the navigation bar.
    async fn navigation(&self) -> Vec<String> {
        let mut links = Vec::new();
        for link in self
            .client
            .find_all(Locator::Css("header nav a"))
            .await
            .expect("navigation")
        {
            links.push(link.text().await.expect("link text"));
        }
        links
    }

    /// Sign in with the keyboard only: type the name, Tab to the password, Enter.
    async fn sign_in(&self, desk: &Desk, name: &str, password: &str) {
        self.open(desk, "/console/login").await;
        let field = self
            .client
            .find(Locator::Css("#name"))
            .await
            .expect("the name field");
        field.click().await.expect("focus the name field");
        let active = self.client.active_element().await.expect("focus");
        active
            .send_keys(&format!("{name}{}", char::from(Key::Tab)))
            .await
            .expect("type the name");
        let active = self.client.active_element().await.expect("focus");
        assert_eq!(
            active.attr("id").await.expect("id").as_deref(),
            Some("password"),
            "Tab moves from the name to the password"
        );
        active
            .send_keys(&format!("{password}{}", char::from(Key::Enter)))
            .await
            .expect("type the password");
        self.shows("/console/overview", "Overview").await;
    }

    /// Screenshots of the page shown now at both widths (1280 px with an 800 px viewport, 390 px
    /// with 844), each as long as the page up to three screens, named `<name>-desktop.png` and
    /// `<name>-phone.png`; at each width nothing may overflow sideways.
    async fn shoot(&self, name: &str) {
        for (label, (width, height)) in [("desktop", DESKTOP), ("phone", PHONE)] {
            self.viewport(width, height).await;
            let sizes = self
                .client
                .execute(
                    "return [window.innerWidth, document.documentElement.scrollWidth];",
                    vec![],
                )
                .await
                .expect("measure");
            let inner = sizes[0].as_u64().expect("innerWidth");
            let scroll = sizes[1].as_u64().expect("scrollWidth");
            assert_eq!(inner, u64::from(width), "the {label} viewport");
            assert!(
                scroll <= inner,
                "{name} at {label} width ({inner} px) overflows sideways to {scroll} px"
            );
            // The whole page (up to three screens) at this width, for the docs.
            let tall = self
                .client
                .execute("return document.documentElement.scrollHeight;", vec![])
                .await
                .expect("measure")
                .as_u64()
                .and_then(|h| u32::try_from(h).ok())
                .unwrap_or(height);
            if tall > height {
                self.viewport(width, tall.min(3 * height)).await;
            }
            let png = self.client.screenshot().await.expect("screenshot");
            assert!(png.starts_with(b"\x89PNG"), "a PNG");
            std::fs::write(self.shots.join(format!("{name}-{label}.png")), png)
                .expect("write screenshot");
        }
        self.viewport(DESKTOP.0, DESKTOP.1).await;
    }

    /// Make the page's viewport `width` × `height` CSS pixels, as a phone or a desktop
    /// window shows it (Chromium's device emulation through ChromeDriver's DevTools endpoint: a
    /// headless window cannot be narrower than 500 px).
    async fn viewport(&self, width: u32, height: u32) {
        let session = self
            .client
            .session_id()
            .await
            .expect("session id")
            .expect("a session");
        let answer = reqwest::Client::new()
            .post(format!(
                "{}/session/{session}/goog/cdp/execute",
                self.driver_url
            ))
            .json(&json!({
                "cmd": "Emulation.setDeviceMetricsOverride",
                "params": {
                    "width": width,
                    "height": height,
                    "deviceScaleFactor": 1,
                    "mobile": width < 600,
                },
            }))
            .send()
            .await
            .expect("device emulation");
        assert!(
            answer.status().is_success(),
            "device emulation: {}",
            answer.status()
        );
    }

    async fn close(mut self) {
        let client = self.client.clone();
        client.close().await.expect("close the browser");
        let _ = self.driver.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_by_keyboard_see_the_overview_and_sign_out() {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) = browser("sign_in_by_keyboard_see_the_overview_and_sign_out").await else {
        return;
    };
    let desk = desk().await;
    let password = desk.kit.password("ada", "admin").await;

    browser.open(&desk, "/console/overview").await;
    browser.shows("/console/login", "Sign in").await;
    browser.shoot("sign-in").await;

    // A wrong password: the page says so and no session starts.
    browser.type_into("#name", "ada").await;
    browser.type_into("#password", "not-the-password").await;
    browser.click("button[type=submit]").await;
    browser.shows("/console/login", "do not match").await;

    browser.sign_in(&desk, "ada", &password).await;
    assert!(browser.text("header").await.contains("ada (admin)"));
    assert!(browser.text("main").await.contains("Emergency switch"));
    browser.shoot("overview").await;

    browser.click("header form button").await;
    browser.shows("/console/login", "Sign in").await;
    browser.open(&desk, "/console/overview").await;
    browser.shows("/console/login", "Sign in").await;
    let trail = events(&desk).await;
    for action in ["console_sign_in", "console_sign_out"] {
        assert!(
            trail
                .iter()
                .any(|e| e.function.as_deref() == Some(action)
                    && e.operator.as_deref() == Some("ada")),
            "{action} is audited"
        );
    }
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emergency_switch_from_the_browser_is_seen_by_a_tool_call() {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) =
        browser("the_emergency_switch_from_the_browser_is_seen_by_a_tool_call").await
    else {
        return;
    };
    let desk = desk().await;
    let password = desk.kit.password("eve", "compliance").await;
    let call = Call::start(&desk.server, "/", "call-browser", "+15550003333").await;
    call.ok("wire", json!({})).await;

    browser.sign_in(&desk, "eve", &password).await;
    browser
        .click("header nav a[href='/console/emergency']")
        .await;
    browser.shows("/console/emergency", "Turn the switch").await;
    browser.shoot("emergency").await;
    browser.click("#on").await;
    browser.click("main form button[type=submit]").await;
    browser
        .shows("/console/emergency", "Confirm the change")
        .await;
    browser.shoot("emergency-confirm").await;
    // The review alone changes nothing.
    call.ok("wire", json!({})).await;
    browser.click("main form button[type=submit]").await;
    browser
        .shows("/console/emergency", "recorded under your name")
        .await;
    call.refused("wire", json!({}), "emergency_disabled").await;
    call.ok("hours", json!({})).await;

    browser.click("#off").await;
    browser.click("main form button[type=submit]").await;
    browser
        .shows("/console/emergency", "Confirm the change")
        .await;
    browser.click("main form button[type=submit]").await;
    // The confirmation page itself says "tools run normally" (of the state to come): wait for
    // the page that says the change is done.
    browser
        .shows("/console/emergency", "recorded under your name")
        .await;
    browser
        .shows("/console/emergency", "tools run normally")
        .await;
    call.ok("wire", json!({})).await;

    let toggles: Vec<_> = events(&desk)
        .await
        .into_iter()
        .filter(|e| e.kind.as_str() == "emergency_toggled")
        .collect();
    assert_eq!(toggles.len(), 2, "{toggles:?}");
    assert!(toggles
        .iter()
        .all(|e| e.operator.as_deref() == Some("eve") && e.role.as_deref() == Some("compliance")));
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_see_only_their_pages_and_a_forged_form_changes_nothing() {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) =
        browser("roles_see_only_their_pages_and_a_forged_form_changes_nothing").await
    else {
        return;
    };
    let desk = desk().await;
    let auditor = desk.kit.password("aud", "auditor").await;
    let admin = desk.kit.password("adm", "admin").await;

    browser.sign_in(&desk, "aud", &auditor).await;
    let links = browser.navigation().await;
    assert!(links.iter().any(|l| l == "Overview"), "{links:?}");
    assert!(!links.iter().any(|l| l.contains("Emergency")), "{links:?}");
    // Typing the address is no way around the navigation: refused, and on record.
    browser.open(&desk, "/console/emergency").await;
    browser.shows("/console/emergency", "Not allowed").await;
    browser.shoot("not-allowed").await;
    assert!(events(&desk)
        .await
        .iter()
        .any(|e| e.kind.as_str() == "access_denied"
            && e.operator.as_deref() == Some("aud")
            && e.reason.as_deref() == Some("access_denied")));
    browser.click("header form button").await;
    browser.shows("/console/login", "Sign in").await;

    // A form whose CSRF token is not the session's (as a page on another site would send).
    browser.sign_in(&desk, "adm", &admin).await;
    browser.open(&desk, "/console/emergency").await;
    browser.shows("/console/emergency", "Turn the switch").await;
    browser
        .client
        .execute(
            "document.querySelector('main input[name=csrf]').value = 'forged'; return null;",
            vec![],
        )
        .await
        .expect("forge the token");
    browser.click("#on").await;
    browser.click("main form button[type=submit]").await;
    browser.shows("/console/emergency", "Form refused").await;
    browser.open(&desk, "/console/emergency").await;
    browser
        .shows("/console/emergency", "tools run normally")
        .await;
    assert!(events(&desk)
        .await
        .iter()
        .any(|e| e.kind.as_str() == "access_denied"
            && e.operator.as_deref() == Some("adm")
            && e.reason.as_deref() == Some("csrf_invalid")));
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_expires_in_the_browser() {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) = browser("an_idle_session_expires_in_the_browser").await else {
        return;
    };
    let desk = desk().await;
    let password = desk.kit.password("ida", "auditor").await;
    browser.sign_in(&desk, "ida", &password).await;
    desk.clock.advance(Duration::from_secs(14 * 60));
    browser.open(&desk, "/console/overview").await;
    browser.shows("/console/overview", "Overview").await;
    desk.clock.advance(Duration::from_secs(15 * 60));
    browser.open(&desk, "/console/overview").await;
    browser.shows("/console/login", "Sign in").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcript_read_for_a_purpose_appears_on_the_audit_page() {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) = browser("a_transcript_read_for_a_purpose_appears_on_the_audit_page").await
    else {
        return;
    };
    const PHRASE: &str = "the blue heron entrance";
    const PURPOSE: &str = "billing dispute 42";
    let desk = desk().await;
    let id = desk
        .kit
        .records
        .store(
            "desk",
            "call-7",
            Some("patient-7"),
            voxguard::RecordKind::Transcript,
            &json!({ "text": format!("Caller: I am at {PHRASE}.") }),
        )
        .await
        .expect("record stored")
        .id;
    let supervisor = desk.kit.password("sue", "supervisor").await;
    let auditor = desk.kit.password("ann", "auditor").await;

    browser.sign_in(&desk, "sue", &supervisor).await;
    browser.click("header nav a[href='/console/records']").await;
    browser.shows("/console/records", "Search").await;
    browser.type_into("#subject", "patient-7").await;
    browser.click("main form button[type=submit]").await;
    browser.shows("/console/records", &id).await;
    browser.shoot("records").await;
    browser
        .click(&format!("main a[href='/console/records/{id}']"))
        .await;
    browser
        .shows(&format!("/console/records/{id}"), "Read the content")
        .await;
    assert!(
        !browser.text("main").await.contains(PHRASE),
        "no content before a purpose"
    );
    browser.shoot("record").await;
    browser.type_into("#purpose", PURPOSE).await;
    browser.click("main form button[type=submit]").await;
    browser
        .shows(&format!("/console/records/{id}/content"), PHRASE)
        .await;
    browser.shoot("record-content").await;
    browser.click("header form button").await;
    browser.shows("/console/login", "Sign in").await;

    // The auditor finds the read, its reader and its purpose on the audit page.
    browser.sign_in(&desk, "ann", &auditor).await;
    browser.click("header nav a[href='/console/audit']").await;
    browser.shows("/console/audit", "Verify now").await;
    let trail = browser.text("main").await;
    assert!(trail.contains(PURPOSE), "{trail}");
    assert!(trail.contains(&id), "{trail}");
    assert!(trail.contains("sue (supervisor)"), "{trail}");
    browser.shoot("audit").await;
    browser
        .click("main form[action='/console/audit/verify'] button")
        .await;
    browser
        .shows("/console/audit/verify", "records verified")
        .await;
    browser.shoot("audit-verify").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_shows_events_as_they_happen_and_says_when_it_stops() {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) =
        browser("the_live_page_shows_events_as_they_happen_and_says_when_it_stops").await
    else {
        return;
    };
    let desk = desk().await;
    let password = desk.kit.password("aud", "auditor").await;
    browser.sign_in(&desk, "aud", &password).await;
    browser.click("header nav a[href='/console/live']").await;
    // live.js ran under the CSP and its EventSource connected.
    browser
        .shows("/console/live", "Connected: new events appear")
        .await;
    // A forged token on a SWAIG call appears without a reload, the caller masked.
    let (status, _) = desk
        .server
        .swaig(
            "/",
            "wire",
            "call-browser-live",
            "+15550004444",
            json!({}),
            Some("forged-token"),
        )
        .await;
    assert!(status.is_client_error());
    browser.shows("/console/live", "caller ***4444").await;
    assert!(browser.text("#live-events").await.contains("token_refused"));
    assert!(!browser.text("body").await.contains("5550004444"));
    browser.shoot("live").await;
    // The operator is removed: the stream ends, and the page says to reload.
    desk.kit
        .records
        .remove_operator(&voxguard::Actor::cli("test"), "aud")
        .await
        .expect("removed");
    browser
        .shows("/console/live", "Live updates have stopped")
        .await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_adds_an_operator_who_signs_in_then_changes_their_role_and_removes_them() {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) =
        browser("an_admin_adds_an_operator_who_signs_in_then_changes_their_role_and_removes_them")
            .await
    else {
        return;
    };
    let desk = desk().await;
    let admin = desk.kit.password("ada", "admin").await;
    browser.sign_in(&desk, "ada", &admin).await;
    browser
        .click("header nav a[href='/console/operators']")
        .await;
    browser.shows("/console/operators", "Operators (1)").await;
    browser.type_into("#add-name", "nia").await;
    browser.click("#add-password").await;
    browser
        .click("form[action='/console/operators/add'] button[type=submit]")
        .await;
    browser
        .shows("/console/operators/add", "Shown only this once.")
        .await;
    let secret = browser
        .client
        .find(Locator::Css("#secret"))
        .await
        .expect("the secret field")
        .prop("value")
        .await
        .expect("its value")
        .expect("a value");
    assert_eq!(secret.len(), 24, "a generated password");
    browser.shoot("operator-added").await;
    browser.open(&desk, "/console/operators").await;
    browser.shows("/console/operators", "Operators (2)").await;
    browser.shoot("operators").await;
    // The secret is in no address the browser went to, and not on the list page.
    assert!(!browser.text("body").await.contains(&secret));

    // The new operator signs in with the password shown once.
    browser.click("header form button").await;
    browser.shows("/console/login", "Sign in").await;
    browser.sign_in(&desk, "nia", &secret).await;
    assert!(browser.text("header").await.contains("nia (auditor)"));
    browser.click("header form button").await;
    browser.shows("/console/login", "Sign in").await;

    // A new role, then removal behind the typed name.
    browser.sign_in(&desk, "ada", &admin).await;
    browser.open(&desk, "/console/operators").await;
    browser.shows("/console/operators", "nia (auditor)").await;
    let nia = "form:has(input[name=name][value=nia])";
    browser
        .client
        .find(Locator::Css(&format!(
            "{nia}[action='/console/operators/role'] select option[value=supervisor]"
        )))
        .await
        .expect("the supervisor option")
        .click()
        .await
        .expect("choose supervisor");
    browser
        .click(&format!("{nia}[action='/console/operators/role'] button"))
        .await;
    browser
        .shows("/console/operators/role", "nia (supervisor)")
        .await;
    browser.open(&desk, "/console/operators").await;
    browser
        .type_into(
            &format!("{nia}[action='/console/operators/remove'] input[name=confirm]"),
            "nia-typo",
        )
        .await;
    browser
        .click(&format!("{nia}[action='/console/operators/remove'] button"))
        .await;
    browser
        .shows("/console/operators/remove", "Nothing was changed")
        .await;
    assert!(events(&desk)
        .await
        .iter()
        .any(|e| e.kind.as_str() == "access_denied"
            && e.operator.as_deref() == Some("ada")
            && e.reason.as_deref() == Some("confirmation_mismatch")));
    browser.open(&desk, "/console/operators").await;
    browser
        .type_into(
            &format!("{nia}[action='/console/operators/remove'] input[name=confirm]"),
            "nia",
        )
        .await;
    browser
        .click(&format!("{nia}[action='/console/operators/remove'] button"))
        .await;
    browser
        .shows("/console/operators/remove", "Operators (1)")
        .await;
    let changes: Vec<_> = events(&desk)
        .await
        .into_iter()
        .filter(|e| e.kind.as_str() == "operator_changed" && e.operator.as_deref() == Some("ada"))
        .filter_map(|e| e.function)
        .collect();
    assert_eq!(changes, ["add", "set_role", "remove"], "{changes:?}");
    browser.close().await;
}

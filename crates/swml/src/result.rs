//! The SWAIG answer: `{"response": "…", "action": [ … ], "post_process": true}`.
//!
//! Owns [`FunctionResult`], its chained builders and the [`Action`] union. Serialization follows
//! the wire rules: `action` only when non-empty, `post_process` only when true. Actions that
//! change the call (connect, transfer, pay, recording) travel as a whole SWML document in the
//! `SWML` action; the runtime inspects them (transfer allow-lists) before they leave.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::document::{Connect, Document, RecordCall, StopRecordCall, Transfer, Verb};
use crate::pay::Pay;

/// What a tool answers: a sentence for the AI plus actions for the platform.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionResult {
    /// Text the AI reads and uses in its reply.
    pub response: String,
    /// Actions for the platform, in order.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub action: Vec<Action>,
    /// Let the AI speak the response before the actions run.
    #[serde(skip_serializing_if = "is_false", default)]
    pub post_process: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// One SWAIG action. Serialized as a single-key object (`{"say": "…"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Merge keys into `global_data`.
    SetGlobalData(Map<String, Value>),
    /// Remove one key from `global_data`.
    UnsetGlobalData(String),
    /// Activate or deactivate functions.
    ToggleFunctions(Vec<Toggle>),
    /// Hang up after the AI finishes speaking.
    Hangup(bool),
    /// Speak a message.
    Say(String),
    /// Stop the conversation.
    Stop(bool),
    /// Merge keys into the function's `meta_data`.
    SetMetaData(Map<String, Value>),
    /// Inject text as if the caller said it.
    UserInput(String),
    /// Execute a SWML document (connect, transfer, pay, recording).
    #[serde(rename = "SWML")]
    Swml(Document),
}

/// One entry of a `toggle_functions` action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Toggle {
    /// Function name.
    pub function: String,
    /// New state.
    pub active: bool,
}

impl FunctionResult {
    /// A result with the sentence the AI should use.
    pub fn new(response: impl Into<String>) -> Self {
        Self {
            response: response.into(),
            ..Self::default()
        }
    }

    /// Append an action.
    pub fn action(mut self, action: Action) -> Self {
        self.action.push(action);
        self
    }

    /// Let the AI speak the response before the actions run.
    pub fn post_process(mut self, on: bool) -> Self {
        self.post_process = on;
        self
    }

    /// Merge the keys of `data` (a JSON object; other values are ignored) into `global_data`.
    pub fn set_global_data(self, data: Value) -> Self {
        match data {
            Value::Object(map) => self.action(Action::SetGlobalData(map)),
            _ => self,
        }
    }

    /// Remove each of `keys` from `global_data` (one action per key, as the schema requires).
    pub fn unset_global_data<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for key in keys {
            self.action.push(Action::UnsetGlobalData(key.into()));
        }
        self
    }

    /// Activate (`true`) or deactivate (`false`) functions.
    pub fn toggle_functions<I, S>(self, toggles: I) -> Self
    where
        I: IntoIterator<Item = (S, bool)>,
        S: Into<String>,
    {
        let toggles = toggles
            .into_iter()
            .map(|(function, active)| Toggle {
                function: function.into(),
                active,
            })
            .collect();
        self.action(Action::ToggleFunctions(toggles))
    }

    /// Hang up after the AI finishes speaking.
    pub fn hangup(self) -> Self {
        self.action(Action::Hangup(true))
    }

    /// Speak `text`.
    pub fn say(self, text: impl Into<String>) -> Self {
        self.action(Action::Say(text.into()))
    }

    /// Stop the conversation.
    pub fn stop(self) -> Self {
        self.action(Action::Stop(true))
    }

    /// Merge the keys of `data` (a JSON object) into the function's `meta_data`.
    pub fn set_meta_data(self, data: Value) -> Self {
        match data {
            Value::Object(map) => self.action(Action::SetMetaData(map)),
            _ => self,
        }
    }

    /// Inject text into the conversation as if the caller said it.
    pub fn user_input(self, text: impl Into<String>) -> Self {
        self.action(Action::UserInput(text.into()))
    }

    /// Execute an arbitrary SWML document.
    pub fn swml(self, document: Document) -> Self {
        self.action(Action::Swml(document))
    }

    /// Connect the caller to `to` (E.164 number or SIP URI).
    pub fn connect(self, to: impl Into<String>) -> Self {
        self.connect_with(Connect {
            to: to.into(),
            from: None,
            timeout: None,
        })
    }

    /// Connect with full `connect` parameters.
    pub fn connect_with(self, connect: Connect) -> Self {
        self.swml(Document::new(vec![Verb::Connect(connect)]))
    }

    /// Transfer the call to another SWML document, section or URL.
    pub fn transfer(self, dest: impl Into<String>) -> Self {
        self.swml(Document::new(vec![Verb::Transfer(Transfer {
            dest: dest.into(),
        })]))
    }

    /// Collect a card payment with the `pay` verb. The card never reaches the AI.
    pub fn pay(self, pay: Pay) -> Self {
        self.swml(Document::new(vec![Verb::Pay(Box::new(pay))]))
    }

    /// Start a background recording.
    pub fn record_call(self, record: RecordCall) -> Self {
        self.swml(Document::new(vec![Verb::RecordCall(record)]))
    }

    /// Stop a background recording (`None`: the latest one).
    pub fn stop_record_call(self, control_id: Option<String>) -> Self {
        self.swml(Document::new(vec![Verb::StopRecordCall(StopRecordCall {
            control_id,
        })]))
    }

    /// Every verb of every SWML action in this result, in order.
    pub fn swml_verbs(&self) -> impl Iterator<Item = &Verb> {
        self.action
            .iter()
            .filter_map(|action| match action {
                Action::Swml(document) => Some(document),
                _ => None,
            })
            .flat_map(Document::verbs)
    }

    /// Pause the call's background recording around every `pay` verb of this result: each
    /// `pay` made while a recording runs becomes `stop_record_call` (that recording's control
    /// id), `pay`, then `record_call` again with its settings, so the card digits the caller
    /// keys in are never recorded (PCI mode). A recording runs when `recording` was already
    /// running before this result, or when a `record_call` earlier in the same section
    /// started one (and no `stop_record_call` ended it since). Returns how many `pay` verbs
    /// were wrapped.
    pub fn pause_recording_around_pay(&mut self, recording: Option<&RecordCall>) -> usize {
        let mut wrapped = 0;
        for action in &mut self.action {
            let Action::Swml(document) = action else {
                continue;
            };
            for verbs in document.sections.values_mut() {
                if !verbs.iter().any(|v| matches!(v, Verb::Pay(_))) {
                    continue;
                }
                let mut active = recording.cloned();
                let mut paused = Vec::with_capacity(verbs.len() + 2);
                for verb in verbs.drain(..) {
                    match &verb {
                        Verb::RecordCall(record) => active = Some(record.clone()),
                        Verb::StopRecordCall(_) => active = None,
                        _ => {}
                    }
                    match (&verb, &active) {
                        (Verb::Pay(_), Some(running)) => {
                            wrapped += 1;
                            paused.push(Verb::StopRecordCall(StopRecordCall {
                                control_id: running.control_id.clone(),
                            }));
                            paused.push(verb);
                            paused.push(Verb::RecordCall(running.clone()));
                        }
                        _ => paused.push(verb),
                    }
                }
                *verbs = paused;
            }
        }
        wrapped
    }

    /// Every `connect` destination and `transfer` target in this result's SWML actions.
    pub fn destinations(&self) -> Vec<&str> {
        self.swml_verbs()
            .filter_map(|verb| match verb {
                Verb::Connect(connect) => Some(connect.to.as_str()),
                Verb::Transfer(transfer) => Some(transfer.dest.as_str()),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn action_and_post_process_are_omitted_when_empty() {
        let value = serde_json::to_value(FunctionResult::new("ok")).unwrap();
        assert_eq!(value, json!({"response": "ok"}));
        let value =
            serde_json::to_value(FunctionResult::new("ok").post_process(true).say("hi")).unwrap();
        assert_eq!(
            value,
            json!({"response": "ok", "action": [{"say": "hi"}], "post_process": true})
        );
    }

    #[test]
    fn connect_renders_a_swml_action() {
        let value =
            serde_json::to_value(FunctionResult::new("ok").connect("+15550001111")).unwrap();
        assert_eq!(
            value["action"][0],
            json!({"SWML": {"version": "1.0.0", "sections": {"main": [{"connect": {"to": "+15550001111"}}]}}})
        );
    }

    #[test]
    fn recording_pauses_around_every_pay_and_resumes() {
        let recording = RecordCall {
            control_id: Some("rec-1".into()),
            ..RecordCall::default()
        };
        let mut result = FunctionResult::new("Collecting payment.")
            .pay(Pay::new("https://shop.example/pay"))
            .connect("+15550100001");
        assert_eq!(result.pause_recording_around_pay(Some(&recording)), 1);
        let names: Vec<String> = result
            .swml_verbs()
            .map(|v| {
                serde_json::to_value(v)
                    .unwrap()
                    .as_object()
                    .unwrap()
                    .keys()
                    .next()
                    .unwrap()
                    .clone()
            })
            .collect();
        assert_eq!(
            names,
            ["stop_record_call", "pay", "record_call", "connect"],
            "only the pay's document is touched"
        );
        let mut plain = FunctionResult::new("no payment").connect("+15550100001");
        assert_eq!(plain.pause_recording_around_pay(Some(&recording)), 0);
        // A recording started earlier in the same result is paused too; none, nothing.
        let mut started_here =
            FunctionResult::new("Recording, then paying.").swml(Document::new(vec![
                Verb::RecordCall(recording.clone()),
                Verb::Pay(Box::new(Pay::new("https://shop.example/pay"))),
            ]));
        assert_eq!(started_here.pause_recording_around_pay(None), 1);
        let mut unrecorded =
            FunctionResult::new("Paying.").pay(Pay::new("https://shop.example/pay"));
        assert_eq!(unrecorded.pause_recording_around_pay(None), 0);
    }

    #[test]
    fn destinations_lists_connect_and_transfer_targets() {
        let result = FunctionResult::new("ok")
            .say("hold on")
            .connect("+15550001111")
            .transfer("https://example.com/next");
        assert_eq!(
            result.destinations(),
            vec!["+15550001111", "https://example.com/next"]
        );
    }

    #[test]
    fn unset_global_data_emits_one_action_per_key() {
        let result = FunctionResult::new("ok").unset_global_data(["a", "b"]);
        assert_eq!(
            serde_json::to_value(&result.action).unwrap(),
            json!([{"unset_global_data": "a"}, {"unset_global_data": "b"}])
        );
    }
}

//! The `upstream-policy` world (`plugin-sdk/wit/policy.wit`): verdicts on module versions not yet
//! stored ([`PluginSet::judge`]), remembered per version when the plugin says so.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use wasmtime::Store;

use super::bindings::policy::{UpstreamPolicy, UpstreamPolicyPre};
pub use super::bindings::policy_types::{Candidate, Verdict};
use super::host::State;
use super::memo::Asked;
use super::{Action, Export, Idle, Loaded, PluginError, PluginId, PluginSet};
use super::{RequestFacts, check_decision};

/// Caps on a policy's answers; beyond them the answer is [`PluginError::BadOutput`].
pub struct PolicyCaps;

impl PolicyCaps {
    /// Sources named in one `sources` verdict, and bytes of each name.
    pub const SOURCES: usize = 32;
    pub const SOURCE: usize = 256;
}

/// What `judge` is given.
pub struct JudgeInput {
    pub facts: Arc<RequestFacts>,
    pub candidates: Vec<Candidate>,
}

impl PluginSet {
    /// Policy `id`'s verdict on each of `candidates`, in order. Verdicts the plugin remembered
    /// (`memo.remember`, per candidate: its module and version stand for the request's) are
    /// given without a call; the plugin is asked about the rest at once.
    pub async fn judge(
        &self,
        id: PluginId,
        asked: &(impl Asked + Sync + ?Sized),
        candidates: &[Candidate],
    ) -> Result<Vec<Arc<Verdict>>, PluginError> {
        let plugin = &self.plugins[id.0];
        let mut verdicts: Vec<Option<Arc<Verdict>>> = vec![None; candidates.len()];
        let mut ask = Vec::new();
        for (i, c) in candidates.iter().enumerate() {
            match plugin.memo_judge.with(&About::new(asked, c), Arc::clone) {
                Ok(v) => verdicts[i] = Some(v),
                Err(_) => ask.push(i),
            }
        }
        if let Some(metrics) = &plugin.metrics
            && ask.len() < candidates.len()
        {
            metrics.memo_hit();
        }
        if !ask.is_empty() {
            let input = JudgeInput {
                facts: asked.facts(),
                candidates: ask.iter().map(|&i| candidates[i].clone()).collect(),
            };
            let (answer, remembered) = Box::pin(self.call::<UpstreamPolicy>(plugin, input)).await?;
            if answer.len() != ask.len() {
                return Err(PluginError::BadOutput {
                    plugin: plugin.shared.name.clone(),
                    reason: format!("{} verdicts for {} candidates", answer.len(), ask.len()),
                });
            }
            for (verdict, i) in answer.into_iter().zip(ask) {
                let verdict = Arc::new(verdict);
                if let Some((depends_on, ttl_ms)) = &remembered
                    && !matches!(*verdict, Verdict::NeedsTime)
                {
                    let about = About::new(asked, &candidates[i]);
                    plugin
                        .memo_judge
                        .put(depends_on.clone(), *ttl_ms, &about, &verdict);
                }
                verdicts[i] = Some(verdict);
            }
        }
        Ok(verdicts.into_iter().flatten().collect())
    }
}

/// A request's facts with a candidate's module and version standing for the request's: the
/// key a verdict is remembered under.
struct About<'a, A: ?Sized> {
    base: &'a A,
    module: &'a str,
    version: &'a str,
}

impl<'a, A: Asked + ?Sized> About<'a, A> {
    fn new(base: &'a A, c: &'a Candidate) -> Self {
        About {
            base,
            module: &c.module,
            version: &c.version,
        }
    }
}

impl<A: Asked + ?Sized> Asked for About<'_, A> {
    fn facts(&self) -> Arc<RequestFacts> {
        self.base.facts()
    }
    fn method(&self) -> &str {
        self.base.method()
    }
    fn path(&self) -> &str {
        self.base.path()
    }
    fn module(&self) -> Option<&str> {
        Some(self.module)
    }
    fn version(&self) -> Option<&str> {
        Some(self.version)
    }
    fn action(&self) -> Action {
        self.base.action()
    }
    fn peer_ip(&self) -> Result<IpAddr, &str> {
        self.base.peer_ip()
    }
    fn tls_client_identity(&self) -> Option<&str> {
        self.base.tls_client_identity()
    }
    fn header_values(&self, name: &http::HeaderName, each: &mut dyn FnMut(&[u8])) {
        self.base.header_values(name, each);
    }
}

impl Export for UpstreamPolicy {
    type Input = JudgeInput;
    type Answer = Vec<Verdict>;
    type Pre = UpstreamPolicyPre<State>;
    const KIND: &'static str = "upstream-policy";

    fn pre(plugin: &Loaded) -> Option<&Self::Pre> {
        plugin.policy.as_ref()
    }

    fn idle(plugin: &Loaded) -> &Idle<Self> {
        &plugin.idle_policies
    }

    fn instantiate<'a>(
        pre: &'a Self::Pre,
        store: &'a mut Store<State>,
    ) -> impl Future<Output = wasmtime::Result<Self>> + Send + 'a {
        pre.instantiate_async(store)
    }

    fn invoke<'a>(
        &'a self,
        store: &'a mut Store<State>,
        input: &'a JudgeInput,
    ) -> impl Future<Output = wasmtime::Result<Vec<Verdict>>> + Send + 'a {
        self.call_judge(store, &input.facts, &input.candidates)
    }

    fn check(plugin: &str, answer: Vec<Verdict>) -> Result<Vec<Verdict>, PluginError> {
        for verdict in &answer {
            match verdict {
                Verdict::Deny(deny) => {
                    let decision = super::Decision::Deny(deny.clone());
                    check_decision(plugin, decision)?;
                    if !(400..=499).contains(&deny.status) {
                        return Err(PluginError::BadOutput {
                            plugin: plugin.to_string(),
                            reason: format!("deny status {} is not 4xx", deny.status),
                        });
                    }
                }
                Verdict::Sources(names) => {
                    if names.is_empty()
                        || names.len() > PolicyCaps::SOURCES
                        || names.iter().any(|n| n.len() > PolicyCaps::SOURCE)
                    {
                        return Err(PluginError::BadOutput {
                            plugin: plugin.to_string(),
                            reason: format!(
                                "a sources verdict names 1 to {} sources of at most {} bytes",
                                PolicyCaps::SOURCES,
                                PolicyCaps::SOURCE
                            ),
                        });
                    }
                }
                Verdict::Admit | Verdict::NeedsTime => {}
            }
        }
        Ok(answer)
    }
}

//! The upstream-policy phase: between a storage miss and the fill, a route's `policies` judge
//! the version about to come in from outside (admit, deny, or the sources to take it from), and
//! `list`/`@latest` leave out what they deny. Versions already stored are never judged again.

use bytes::Bytes;
use http::StatusCode;

use crate::error::Error;
use crate::plugin::policy::{Candidate, Verdict};
use crate::storage::ArtifactKind;
use crate::upstream::SourceList;

use super::Ctx;

/// How many `.info`s are fetched at once for a policy that needs the listed versions' times.
const TIME_FETCHES_AT_ONCE: usize = 8;

/// What the route's policies decided about one version.
pub(super) struct Admitted {
    /// The sources to fetch it from (`None`: the route's, in order).
    pub sources: Option<SourceList>,
}

/// A policy's combined verdict on one candidate.
enum Combined {
    Admit(Option<Vec<String>>),
    Deny(Error),
    NeedsTime,
}

impl Ctx<'_> {
    fn policies(&self) -> &[crate::plugin::PluginId] {
        self.app
            .plugin_refs
            .policies
            .get(self.route.index)
            .map_or(&[], |ids| ids)
    }

    /// Whether the route has policies.
    pub(super) fn has_policies(&self) -> bool {
        !self.policies().is_empty()
    }

    /// Judges `version`, not stored, before anything of it is fetched: its time is fetched
    /// first when a policy needs it. A deny is the error the client gets.
    pub(super) async fn admit(&self, version: &str) -> Result<Admitted, Error> {
        if !self.has_policies() {
            return Ok(Admitted { sources: None });
        }
        let stored = self.store.committed_versions(self.module).await?;
        let retractions = self.newest_retractions(&stored, &[version]).await?;
        let mut candidate = Candidate {
            module: self.module.as_str().to_owned(),
            version: version.to_owned(),
            time: self.known_time(version).await?,
            source: self.first_source(),
            retracted: retractions.as_ref().map(|r| retracted(r, version)),
        };
        let mut verdict = self.judge_one(&candidate).await?;
        if matches!(verdict, Combined::NeedsTime) && candidate.time.is_none() {
            let info = Box::pin(self.fetcher().fetch_info(version)).await?;
            candidate.time = time_of(&info);
            verdict = self.judge_one(&candidate).await?;
        }
        match verdict {
            Combined::Admit(None) => Ok(Admitted { sources: None }),
            Combined::Admit(Some(names)) => Ok(Admitted {
                sources: Some(self.planned_sources(&names)?),
            }),
            Combined::Deny(e) => Err(e),
            Combined::NeedsTime => Err(no_time(&candidate)),
        }
    }

    /// Which of `versions` (with their times, when known; none stored) the policies admit.
    pub(super) async fn admitted(
        &self,
        versions: &[(String, Option<String>)],
        stored: &[String],
    ) -> Result<Vec<bool>, Error> {
        if !self.has_policies() || versions.is_empty() {
            return Ok(vec![true; versions.len()]);
        }
        let all: Vec<&str> = versions.iter().map(|(v, _)| v.as_str()).collect();
        let retractions = self.newest_retractions(stored, &all).await?;
        let source = self.first_source();
        let mut candidates: Vec<Candidate> = versions
            .iter()
            .map(|(v, t)| Candidate {
                module: self.module.as_str().to_owned(),
                version: v.clone(),
                time: t.clone(),
                source: source.clone(),
                retracted: retractions.as_ref().map(|r| retracted(r, v)),
            })
            .collect();
        let mut verdicts = self.judge(&candidates).await?;
        let untimed: Vec<usize> = (0..candidates.len())
            .filter(|&i| matches!(verdicts[i], Combined::NeedsTime) && candidates[i].time.is_none())
            .collect();
        if !untimed.is_empty() {
            use futures_util::StreamExt;
            let versions: Vec<String> = untimed
                .iter()
                .map(|&i| candidates[i].version.clone())
                .collect();
            let times: Vec<Option<String>> = futures_util::stream::iter(versions)
                .map(|version| async move {
                    match self.known_time(&version).await {
                        Ok(Some(t)) => Some(t),
                        _ => match Box::pin(self.fetcher().fetch_info(&version)).await {
                            Ok(info) => time_of(&info),
                            Err(e) => {
                                tracing::debug!(module = %self.module, version, error = %e,
                                        "no time for a policy; version left out");
                                None
                            }
                        },
                    }
                })
                .buffered(TIME_FETCHES_AT_ONCE)
                .collect()
                .await;
            for (&i, t) in untimed.iter().zip(times) {
                candidates[i].time = t;
            }
            let again: Vec<Candidate> = untimed.iter().map(|&i| candidates[i].clone()).collect();
            for (&i, v) in untimed.iter().zip(self.judge(&again).await?) {
                verdicts[i] = v;
            }
        }
        Ok(verdicts
            .into_iter()
            .map(|v| matches!(v, Combined::Admit(_)))
            .collect())
    }

    async fn judge_one(&self, candidate: &Candidate) -> Result<Combined, Error> {
        let mut v = self.judge(std::slice::from_ref(candidate)).await?;
        Ok(v.pop().unwrap_or(Combined::Admit(None)))
    }

    /// Every policy of the route on every candidate: the first deny wins, then a needs-time,
    /// then the first sources plan.
    async fn judge(&self, candidates: &[Candidate]) -> Result<Vec<Combined>, Error> {
        let mut combined: Vec<Combined> = (0..candidates.len())
            .map(|_| Combined::Admit(None))
            .collect();
        let (Some(plugins), Some(facts)) = (&self.app.plugins, self.facts) else {
            return Ok(combined);
        };
        for &id in self.policies() {
            let verdicts = plugins.judge(id, facts, candidates).await.map_err(|e| {
                tracing::warn!(plugin = plugins.name(id), error = %e, "policy plugin failed; version refused");
                Error::Plugin {
                    phase: "upstream policy",
                    error: e,
                }
            })?;
            for (slot, verdict) in combined.iter_mut().zip(verdicts) {
                let next = match (&*slot, &*verdict) {
                    (Combined::Deny(_), _) => continue,
                    (_, Verdict::Deny(d)) => Combined::Deny(Error::Denied {
                        status: StatusCode::from_u16(d.status).unwrap_or(StatusCode::FORBIDDEN),
                        message: d.message.clone(),
                    }),
                    (Combined::NeedsTime, _) | (_, Verdict::Admit) => continue,
                    (_, Verdict::NeedsTime) => Combined::NeedsTime,
                    (Combined::Admit(Some(_)), Verdict::Sources(_)) => continue,
                    (Combined::Admit(None), Verdict::Sources(names)) => {
                        Combined::Admit(Some(names.clone()))
                    }
                };
                *slot = next;
            }
        }
        Ok(combined)
    }

    /// Where a version would come from: the route's first source's name (`git` for its git
    /// repositories).
    fn first_source(&self) -> Option<String> {
        let proxy = self.route.sources.entries.first().map(|e| e.name.clone());
        match &self.route.git {
            Some(git) if git.first || proxy.is_none() => Some("git".into()),
            _ => proxy.filter(|n| !n.is_empty()),
        }
    }

    /// The `retract` intervals of the module's newest go.mod at hand: the stored go.mod of the
    /// newest stored version, when no version among `versions` (judged now) is newer. `None`:
    /// not known (nothing of the module's newest version is fetched for a policy).
    async fn newest_retractions(
        &self,
        stored: &[String],
        versions: &[&str],
    ) -> Result<Option<Vec<(String, String)>>, Error> {
        let newest = |vs: &mut dyn Iterator<Item = &str>| {
            vs.filter(|v| !crate::goproxy::pseudo::is_pseudo_version(v))
                .max_by(|a, b| {
                    super::latest_rank(a)
                        .cmp(&super::latest_rank(b))
                        .then_with(|| crate::goproxy::semver::compare(a, b))
                })
                .map(str::to_owned)
        };
        let Some(best_stored) = newest(&mut stored.iter().map(String::as_str)) else {
            return Ok(None);
        };
        let best_asked = newest(&mut versions.iter().copied());
        if best_asked.is_some_and(|a| {
            super::latest_rank(&a)
                .cmp(&super::latest_rank(&best_stored))
                .then_with(|| crate::goproxy::semver::compare(&a, &best_stored))
                .is_gt()
        }) {
            return Ok(None);
        }
        let go_mod = self
            .store
            .read_small(self.key(&best_stored, ArtifactKind::Mod))
            .await?;
        Ok(go_mod.map(|m| crate::gitsource::retract_intervals(&m)))
    }

    /// The version's time, when its `.info` is at hand (in memory, or stored with its zip).
    async fn known_time(&self, version: &str) -> Result<Option<String>, Error> {
        let info = self
            .store
            .read_small(self.key(version, ArtifactKind::Info))
            .await?;
        Ok(info.as_deref().and_then(time_of))
    }

    /// The route's upstreams named by a policy's `sources` verdict, in its order.
    fn planned_sources(&self, names: &[String]) -> Result<SourceList, Error> {
        let mut entries = Vec::new();
        for name in names {
            let of_name: Vec<_> = self
                .route
                .sources
                .entries
                .iter()
                .filter(|e| &e.name == name)
                .cloned()
                .collect();
            if of_name.is_empty() {
                return Err(Error::Plugin {
                    phase: "upstream policy",
                    error: crate::plugin::PluginError::BadOutput {
                        plugin: self.route.policies.join(","),
                        reason: format!(
                            "sources names {name:?}, not an [upstream.NAME] of route[{}]",
                            self.route.index
                        ),
                    },
                });
            }
            entries.extend(of_name);
        }
        Ok(SourceList { entries })
    }
}

/// Whether `version` falls in one of the `[low, high]` intervals.
fn retracted(intervals: &[(String, String)], version: &str) -> bool {
    use crate::goproxy::semver::compare;
    intervals
        .iter()
        .any(|(lo, hi)| compare(lo, version).is_le() && compare(version, hi).is_le())
}

/// `Time` of an `.info` body.
fn time_of(info: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Info {
        #[serde(rename = "Time")]
        time: Option<String>,
    }
    serde_json::from_slice::<Info>(info).ok()?.time
}

fn no_time(c: &Candidate) -> Error {
    Error::Denied {
        status: StatusCode::FORBIDDEN,
        message: format!(
            "{}@{}: the upstream policy needs the version's time, and the upstream gave none",
            c.module, c.version
        ),
    }
}

/// An `.info` body's `Version`.
pub(super) fn version_of(info: &Bytes) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Info {
        #[serde(rename = "Version")]
        version: String,
    }
    serde_json::from_slice::<Info>(info).ok().map(|i| i.version)
}

impl Ctx<'_> {
    /// The sources' `list` lines the policies admit (versions already stored are kept).
    pub(super) async fn admitted_lines(
        &self,
        lines: Vec<super::git::ListLine>,
        stored: &[String],
    ) -> Result<Vec<super::git::ListLine>, Error> {
        if !self.has_policies() {
            return Ok(lines);
        }
        let judged: Vec<usize> = (0..lines.len())
            .filter(|&i| !stored.contains(&lines[i].version))
            .collect();
        let asked: Vec<(String, Option<String>)> = judged
            .iter()
            .map(|&i| (lines[i].version.clone(), lines[i].time.clone()))
            .collect();
        let verdicts = self.admitted(&asked, stored).await?;
        let mut keep = vec![true; lines.len()];
        for (&i, ok) in judged.iter().zip(verdicts) {
            keep[i] = ok;
        }
        Ok(lines
            .into_iter()
            .zip(keep)
            .filter_map(|(l, k)| k.then_some(l))
            .collect())
    }

    /// The sources' `@latest` answer if the policies admit it, else the newest admitted
    /// version's `.info` (ranked as the go command ranks `@latest`).
    pub(super) async fn admitted_latest(&self, body: Bytes) -> Result<Bytes, Error> {
        let Some(version) = version_of(&body) else {
            return Ok(body);
        };
        let stored = self.store.committed_versions(self.module).await?;
        if stored.contains(&version) {
            return Ok(body);
        }
        if self
            .admitted(&[(version.clone(), time_of(&body))], &stored)
            .await?[0]
        {
            return Ok(body);
        }
        let what = format!("{}/@v/list", self.module.escaped());
        let lines = match self.source_versions(&what).await {
            Ok(lines) => lines,
            Err(Error::NotFound(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut candidates: Vec<String> = self
            .admitted_lines(lines, &stored)
            .await?
            .into_iter()
            .map(|l| l.version)
            .chain(stored)
            .filter(|v| v != &version)
            .collect();
        candidates.sort_by(|a, b| {
            super::latest_rank(a)
                .cmp(&super::latest_rank(b))
                .then_with(|| crate::goproxy::semver::compare(a, b))
        });
        let Some(best) = candidates.pop() else {
            return Err(Error::NotFound(format!(
                "{}/@latest: the route's policies admit no version (the newest, {version}, is refused)",
                self.module.escaped()
            )));
        };
        if let Some(info) = self
            .store
            .read_small(self.key(&best, ArtifactKind::Info))
            .await?
        {
            return Ok(info);
        }
        Box::pin(self.fetcher().fetch_info(&best)).await
    }
}

impl super::App {
    /// `GET /admin/policy/<module>` (escaped): the stored versions of the module that its
    /// route's policies would refuse now, one per line (`<version> <status> <reason>`), so an
    /// operator sees what a policy change leaves in place (stored versions are not judged
    /// again on reads). Empty when the policies refuse none.
    pub(super) async fn policy_audit(
        &self,
        escaped: &str,
        asking: &super::Asking<'_>,
    ) -> Result<http::Response<super::ResponseBody>, Error> {
        let module = crate::goproxy::path::ModulePath::from_escaped(escaped)
            .map_err(|e| Error::BadRequest(format!("{escaped}: {e}")))?;
        let facts = super::Facts::new(asking, Some(&module), None);
        let route = self
            .pick_route(module.as_str(), &facts)
            .await?
            .ok_or_else(|| Error::NotFound(format!("{module}: no route serves this module")))?;
        let store = self.store_of(route)?;
        let ctx = Ctx {
            app: self,
            route,
            store,
            module: &module,
            facts: Some(&facts),
        };
        let mut versions = store.committed_versions(&module).await?;
        versions.sort_by(|a, b| crate::goproxy::semver::compare(a, b));
        let mut candidates = Vec::with_capacity(versions.len());
        for v in &versions {
            candidates.push(Candidate {
                module: module.as_str().to_owned(),
                version: v.clone(),
                time: ctx.known_time(v).await?,
                source: ctx.first_source(),
                retracted: None,
            });
        }
        let mut body = String::new();
        for (c, verdict) in candidates.iter().zip(ctx.judge(&candidates).await?) {
            match verdict {
                Combined::Deny(Error::Denied { status, message }) => {
                    body.push_str(&format!("{} {} {message}\n", c.version, status.as_u16()));
                }
                Combined::Deny(e) => body.push_str(&format!("{} {e}\n", c.version)),
                Combined::NeedsTime => body.push_str(&format!(
                    "{} 403 the policy needs the version's time, and its .info has none\n",
                    c.version
                )),
                Combined::Admit(_) => {}
            }
        }
        Ok(super::respond::text(StatusCode::OK, body, false))
    }
}

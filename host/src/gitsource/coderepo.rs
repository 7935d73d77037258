//! The version logic of the go command's `codeRepo` (`cmd/go/internal/modfetch/coderepo.go`)
//! for one module in one repository: `Versions`, `Stat`/`convert`, `validatePseudoVersion`,
//! `findDir`, `GoMod`, `retractedVersions`.

use super::repo::{CodeRev, Repo};
use super::{GitError, Located, RevInfo, join};
use crate::goproxy::path::{ModulePath, match_path_major, split_path_version};
use crate::goproxy::pseudo::{self, Timestamp};
use crate::goproxy::semver;

/// `codeRepo.findDir`'s result.
pub(super) struct FoundDir {
    pub(super) rev: CodeRev,
    pub(super) dir: String,
    pub(super) go_mod: Option<Vec<u8>>,
}

/// A repository bound to one module: the version logic of `codeRepo`.
pub(super) struct CodeRepo<'a> {
    pub(super) repo: &'a Repo,
    pub(super) loc: &'a Located,
}

impl CodeRepo<'_> {
    fn module(&self) -> &ModulePath {
        &self.loc.module
    }

    /// `codeRepo.Versions`.
    pub(super) fn versions(&self) -> Result<Vec<String>, GitError> {
        // gopkg.in/macaroon-bakery.v2-unstable does not use the v2 tags (those are for
        // macaroon-bakery.v2): it has no tagged versions at all.
        let path = self.module().as_str();
        if path.starts_with("gopkg.in/") && path.ends_with("-unstable") {
            return Ok(Vec::new());
        }
        let prefix = self.loc.tag_prefix();
        let mut list = Vec::new();
        let mut incompatible = Vec::new();
        for tag in self.repo.tags(&prefix) {
            let v = &tag[prefix.len()..];
            if v.is_empty() || semver::canonical_semver(v).as_deref() != Some(v) {
                continue;
            }
            if pseudo::is_pseudo_version(v) {
                continue;
            }
            if !match_path_major(v, &self.loc.path_major) {
                if self.loc.code_dir.is_empty()
                    && self.loc.path_major.is_empty()
                    && semver::major(v) > "v1"
                {
                    incompatible.push(v.to_owned());
                }
                continue;
            }
            list.push(v.to_owned());
        }
        semver::sort(&mut list);
        semver::sort(&mut incompatible);
        // appendIncompatibleVersions
        if incompatible.is_empty() || !self.loc.path_major.is_empty() {
            return Ok(list);
        }
        let has_go_mod = |tag: &str| -> Result<bool, GitError> {
            let rev = self.repo.stat(tag)?;
            Ok(self.repo.read_file(&rev.name, "go.mod")?.is_some())
        };
        if let Some(last) = list.last()
            && has_go_mod(last)?
        {
            return Ok(list);
        }
        let mut last_major = String::new();
        let mut last_major_has_go_mod = false;
        for (i, v) in incompatible.iter().enumerate() {
            let major = semver::major(v);
            if major != last_major {
                let latest_at_major = incompatible[i..]
                    .iter()
                    .take_while(|w| semver::major(w) == major)
                    .last()
                    .unwrap_or(v);
                last_major = major.to_owned();
                last_major_has_go_mod = has_go_mod(latest_at_major)?;
            }
            if !last_major_has_go_mod {
                list.push(format!("{v}+incompatible"));
            }
        }
        Ok(list)
    }

    /// The go.mod of canonical `version` (`codeRepo.GoMod` after its checks).
    pub(super) fn go_mod(&self, version: &str) -> Result<Vec<u8>, GitError> {
        let found = self.find_dir(version)?;
        if let Some(g) = found.go_mod {
            return Ok(g);
        }
        let file = join(&found.dir, "go.mod");
        Ok(self
            .repo
            .read_file(&found.rev.name, &file)?
            .unwrap_or_else(|| format!("module {}\n", self.loc.module).into_bytes()))
    }

    /// `codeRepo.retractedVersions`: the `retract` intervals in the go.mod of the highest
    /// release (else pre-release) below the first `+incompatible` version. Any failure means
    /// no retractions, as in `convert`.
    fn retractions(&self) -> Vec<(String, String)> {
        let Ok(mut versions) = self.versions() else {
            return Vec::new();
        };
        if let Some(i) = versions.iter().position(|v| v.ends_with("+incompatible")) {
            versions.truncate(i);
        }
        let highest = versions
            .iter()
            .rev()
            .find(|v| semver::prerelease(v).is_empty())
            .or_else(|| versions.last());
        match highest.map(|v| self.go_mod(v)) {
            Some(Ok(data)) => retract_intervals(&data),
            _ => Vec::new(),
        }
    }

    /// `codeRepo.revToRev`: the git revision for a version or query.
    fn rev_to_rev(&self, rev: &str) -> String {
        if semver::is_valid(rev) {
            if pseudo::is_pseudo_version(rev) {
                return pseudo::pseudo_version_rev(rev).unwrap_or(rev).to_owned();
            }
            let rev = rev.strip_suffix("+incompatible").unwrap_or(rev);
            return format!("{}{rev}", self.loc.tag_prefix());
        }
        rev.to_owned()
    }

    /// `codeRepo.Stat` + `convert` → the `.info` answer.
    pub(super) fn stat(&self, query: &str) -> Result<RevInfo, GitError> {
        let code_rev = self.rev_to_rev(query);
        let info = self.repo.stat(&code_rev).map_err(|e| match e {
            GitError::NotFound(m) => {
                GitError::not_found(format!("{}@{query}: invalid version: {m}", self.module()))
            }
            e => e,
        })?;
        let (version, info) = self.convert(info, query)?;
        Ok(RevInfo {
            version,
            time: info.time.to_string(),
        })
    }

    /// `codeRepo.Latest`: the default branch's head.
    pub(super) fn latest_head(&self) -> Result<RevInfo, GitError> {
        let head = self
            .repo
            .head()
            .ok_or_else(|| GitError::not_found(format!("{}: no commits", self.module())))?;
        let info = self.repo.stat(&head.to_hex().to_string())?;
        let (version, info) = self.convert(info, "")?;
        Ok(RevInfo {
            version,
            time: info.time.to_string(),
        })
    }

    /// `.mod`/`.zip` requests: the version must be canonical; a pseudo-version must resolve.
    pub(super) fn check_canonical_request(&self, v: &str) -> Result<(), GitError> {
        if semver::canonical(v).as_deref() != Some(v) {
            return Err(GitError::invalid(
                self.module(),
                v,
                "version is not canonical",
            ));
        }
        if pseudo::is_pseudo_version(v) {
            self.stat(v)?;
        }
        Ok(())
    }

    /// `canUseIncompatible`.
    fn can_use_incompatible(
        &self,
        info: &CodeRev,
        v: &str,
        stat_vers: &str,
    ) -> Result<bool, GitError> {
        if !self.loc.code_dir.is_empty() || !self.loc.path_major.is_empty() {
            return Ok(false);
        }
        if self.repo.read_file(&info.name, "go.mod")?.is_some() {
            return Ok(false);
        }
        if !v.is_empty() && !stat_vers.ends_with("+incompatible") {
            let major = semver::major(v);
            if self
                .repo
                .read_file(&info.name, &format!("{major}/go.mod"))?
                .is_some()
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// `checkCanonical` inside `convert`.
    fn check_canonical(
        &self,
        info: &CodeRev,
        v: &str,
        stat_vers: &str,
    ) -> Result<String, GitError> {
        self.find_dir(v)
            .map_err(|e| GitError::not_found(e.to_string()))?;
        let mut v = v.to_owned();
        if v == stat_vers.strip_suffix("+incompatible").unwrap_or(stat_vers) {
            v = stat_vers.to_owned();
        }
        let base = v.strip_suffix("+incompatible").unwrap_or(&v).to_owned();
        let mut err_incompatible = None;
        if !match_path_major(&base, &self.loc.path_major) {
            if self.can_use_incompatible(info, &base, stat_vers)? {
                v = format!("{base}+incompatible");
            } else if !self.loc.path_major.is_empty() {
                err_incompatible = Some(GitError::invalid(
                    self.module(),
                    &v,
                    "module path includes a major version suffix, so major version must match",
                ));
            } else {
                err_incompatible = Some(GitError::invalid(
                    self.module(),
                    &v,
                    format!(
                        "module contains a go.mod file, so module path must match major version (\"{}/{}\")",
                        self.loc.path_prefix,
                        semver::major(&v)
                    ),
                ));
            }
        } else if v.ends_with("+incompatible") {
            err_incompatible = Some(GitError::invalid(
                self.module(),
                &v,
                format!(
                    "+incompatible suffix not allowed: major version {} is compatible",
                    semver::major(&v)
                ),
            ));
        }
        if !stat_vers.is_empty() && semver::canonical(stat_vers).as_deref() == Some(stat_vers) {
            let stat_base = stat_vers.strip_suffix("+incompatible").unwrap_or(stat_vers);
            if stat_base != base {
                return Err(GitError::not_found(format!(
                    "{}@{stat_vers}: invalid version: resolves to version {v} ({stat_base} is not a tag)",
                    self.module()
                )));
            }
        }
        match err_incompatible {
            Some(e) => Err(e),
            None => Ok(v),
        }
    }

    /// `tagToVersion` with this module's tag prefix.
    fn tag_to_version(&self, tag: &str) -> (String, bool) {
        tag_to_version(&self.loc.tag_prefix(), tag)
    }

    /// `codeRepo.convert`: the canonical version for a resolved revision.
    fn convert(&self, info: CodeRev, stat_vers: &str) -> Result<(String, CodeRev), GitError> {
        if pseudo::is_pseudo_version(stat_vers) {
            let v = self.check_canonical(&info, stat_vers, stat_vers)?;
            self.validate_pseudo_version(&info, stat_vers)?;
            return Ok((v, info));
        }
        let (v, canonical) = self.tag_to_version(&info.version);
        if canonical && let Ok(v) = self.check_canonical(&info, &v, stat_vers) {
            return Ok((v, info));
        }
        let retractions = std::cell::OnceCell::new();
        let is_retracted = |v: &str| {
            retractions
                .get_or_init(|| self.retractions())
                .iter()
                .any(|(lo, hi)| semver::compare(lo, v).is_le() && semver::compare(v, hi).is_le())
        };
        let mut highest = String::new();
        let mut pseudo_base = String::new();
        for tag in &info.tags {
            let (v, canonical) = self.tag_to_version(tag);
            if !stat_vers.is_empty() && semver::compare(&v, stat_vers).is_eq() {
                if canonical {
                    let v = self.check_canonical(&info, &v, stat_vers)?;
                    return Ok((v, info));
                }
                pseudo_base = v.clone();
            }
            if canonical
                && semver::compare(&highest, &v).is_lt()
                && !is_retracted(&v)
                && (match_path_major(&v, &self.loc.path_major)
                    || self.can_use_incompatible(&info, &v, stat_vers)?)
            {
                highest = v;
            }
        }
        if !highest.is_empty() {
            let v = self.check_canonical(&info, &highest, stat_vers)?;
            return Ok((v, info));
        }
        if pseudo_base.is_empty() {
            let allowed = |tag: &str| {
                let (v, _) = self.tag_to_version(tag);
                !v.is_empty()
                    && (match_path_major(&v, &self.loc.path_major)
                        || self
                            .can_use_incompatible(&info, &v, stat_vers)
                            .unwrap_or(false))
                    && !is_retracted(&v)
            };
            if let Some(tag) = self
                .repo
                .recent_tag(&info.name, &self.loc.tag_prefix(), allowed)?
            {
                pseudo_base = self.tag_to_version(&tag).0;
            }
        }
        let pv = pseudo::pseudo_version(
            self.loc.pseudo_major(),
            &pseudo_base,
            info.time,
            &info.short,
        );
        let v = self.check_canonical(&info, &pv, stat_vers)?;
        Ok((v, info))
    }

    /// `codeRepo.validatePseudoVersion`.
    fn validate_pseudo_version(&self, info: &CodeRev, version: &str) -> Result<(), GitError> {
        let bad = |s: String| GitError::invalid(self.module(), version, s);
        let rev = pseudo::pseudo_version_rev(version).map_err(|e| bad(e.to_string()))?;
        if rev != info.short {
            return Err(bad(if rev.starts_with(&info.short) {
                format!(
                    "revision is longer than canonical (expected {})",
                    info.short
                )
            } else if info.short.starts_with(rev) {
                format!(
                    "revision is shorter than canonical (expected {})",
                    info.short
                )
            } else {
                format!(
                    "does not match short name of revision (expected {})",
                    info.short
                )
            }));
        }
        let t: Timestamp = pseudo::pseudo_version_time(version).map_err(|e| bad(e.to_string()))?;
        if t != info.time {
            return Err(bad(format!(
                "does not match version-control timestamp (expected {})",
                info.time.pseudo_format()
            )));
        }
        let prefix = self.loc.tag_prefix();
        let base =
            pseudo::pseudo_version_base(version.strip_suffix("+incompatible").unwrap_or(version))
                .map_err(|e| bad(e.to_string()))?;
        let Some(base) = base else {
            if self.loc.pseudo_major().is_empty() && semver::major(version) == "v1" {
                return Err(bad(
                    "major version without preceding tag must be v0, not v1".into(),
                ));
            }
            return Ok(());
        };
        for tag in &info.tags {
            if tag.strip_prefix(prefix.as_str()).unwrap_or(tag) == base {
                return Err(bad(format!(
                    "tag ({tag}) found on revision {rev} is already canonical, so should not be replaced with a pseudo-version derived from that tag"
                )));
            }
        }
        let mut last_tag = None;
        for tag in self.repo.tags(&format!("{prefix}{base}")) {
            let version_only = tag.strip_prefix(prefix.as_str()).unwrap_or(tag);
            if semver::compare(version_only, &base).is_eq() {
                last_tag = Some(tag.to_owned());
                if self.repo.descends_from(&info.name, tag)? {
                    return Ok(());
                }
            }
        }
        Err(bad(match last_tag {
            None => format!("preceding tag ({base}) not found"),
            Some(t) => format!("revision {rev} is not a descendent of preceding tag ({t})"),
        }))
    }

    /// `codeRepo.findDir`: the revision, directory and go.mod serving `version`.
    pub(super) fn find_dir(&self, version: &str) -> Result<FoundDir, GitError> {
        if !semver::is_valid(version) {
            return Err(GitError::invalid(self.module(), version, "syntax error"));
        }
        let rev_name = self.rev_to_rev(version);
        let rev = self.repo.stat(&rev_name)?;
        let loc = self.loc;
        let file1 = join(&loc.code_dir, "go.mod");
        let gomod1 = self.repo.read_file(&rev.name, &file1)?;
        let mpath1 = gomod1.as_deref().map(module_path).unwrap_or_default();
        let found1 = gomod1.is_some() && is_major(&mpath1, &loc.path_major);
        let mut file2 = String::new();
        if !loc.path_major.is_empty() && loc.code_root != loc.module.as_str() {
            let dir2 = join(&loc.code_dir, &loc.path_major[1..]);
            file2 = join(&dir2, "go.mod");
            let gomod2 = self.repo.read_file(&rev.name, &file2)?;
            let mpath2 = gomod2.as_deref().map(module_path).unwrap_or_default();
            let found2 = gomod2.is_some() && is_major(&mpath2, &loc.path_major);
            if found1 && found2 {
                return Err(GitError::not_found(format!(
                    "{}/{file1} and ...{}/go.mod both have ...{} module paths at revision {rev_name}",
                    loc.path_prefix, loc.path_major, loc.path_major
                )));
            }
            if found2 {
                return Ok(FoundDir {
                    rev,
                    dir: dir2,
                    go_mod: gomod2,
                });
            }
            if gomod2.is_some() {
                return Err(GitError::not_found(if mpath2.is_empty() {
                    format!(
                        "{}/{file2} is missing module path at revision {rev_name}",
                        loc.code_root
                    )
                } else {
                    format!(
                        "{}/{file2} has non-...{} module path \"{mpath2}\" at revision {rev_name}",
                        loc.code_root, loc.path_major
                    )
                }));
            }
        }
        if found1 {
            return Ok(FoundDir {
                rev,
                dir: loc.code_dir.clone(),
                go_mod: gomod1,
            });
        }
        if gomod1.is_some() {
            let suffix = if file2.is_empty() {
                String::new()
            } else {
                format!(" (and ...{}/go.mod does not exist)", loc.path_major)
            };
            return Err(GitError::not_found(if mpath1.is_empty() {
                format!("{file1} is missing module path{suffix} at revision {rev_name}")
            } else if !loc.path_major.is_empty() {
                format!(
                    "{file1} has non-...{} module path \"{mpath1}\"{suffix} at revision {rev_name}",
                    loc.path_major
                )
            } else {
                format!(
                    "{file1} has post-{} module path \"{mpath1}\"{suffix} at revision {rev_name}",
                    semver::major(version)
                )
            }));
        }
        if loc.code_dir.is_empty() && loc.path_major.is_empty() {
            return Ok(FoundDir {
                rev,
                dir: String::new(),
                go_mod: None,
            });
        }
        Err(GitError::not_found(if file2.is_empty() {
            format!("missing {}/go.mod at revision {rev_name}", loc.path_prefix)
        } else {
            format!(
                "missing {}/go.mod and ...{}/go.mod at revision {rev_name}",
                loc.path_prefix, loc.path_major
            )
        }))
    }
}

/// `isMajor`: whether go.mod module path `mpath` fits the major suffix `path_major`.
pub(super) fn is_major(mpath: &str, path_major: &str) -> bool {
    if mpath.is_empty() {
        return false;
    }
    let Some((_, mpath_major)) = split_path_version(mpath) else {
        return false;
    };
    if path_major.is_empty() {
        return matches!(mpath_major.get(1..).unwrap_or(""), "" | "v0" | "v1");
    }
    if mpath_major.is_empty() {
        return false;
    }
    path_major[1..] == mpath_major[1..]
}

/// `tagToVersion`: the canonical version of `tag` for a module whose tags start with `prefix`
/// (`""` at the repository root, `sub/` for a module in `sub/`), and whether the tag is exactly
/// that version; `("", false)` for a tag that names no version of the module.
pub fn tag_to_version(prefix: &str, tag: &str) -> (String, bool) {
    let Some(trimmed) = tag.strip_prefix(prefix) else {
        return (String::new(), false);
    };
    if pseudo::is_pseudo_version(tag) {
        return (String::new(), false);
    }
    let Some(v) = semver::canonical_semver(trimmed) else {
        return (String::new(), false);
    };
    if !trimmed.starts_with(&v) {
        return (String::new(), false);
    }
    let canonical = v == trimmed;
    (v, canonical)
}

/// `modfile.ModulePath`, leniently: the path on the first `module` line, unquoted, or `""`.
pub fn module_path(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        let line = line.trim_start();
        let Some(rest) = line.strip_prefix("module") else {
            continue;
        };
        if !rest.starts_with([' ', '\t', '"', '`']) {
            continue;
        }
        let rest = rest.split("//").next().unwrap_or("").trim();
        if let Some(q) = rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            return q.to_owned();
        }
        if let Some(q) = rest.strip_prefix('`').and_then(|r| r.strip_suffix('`')) {
            return q.to_owned();
        }
        return rest.to_owned();
    }
    String::new()
}

/// The `retract` directives of a go.mod as `[low, high]` intervals (a single version is
/// `[v, v]`), read leniently like `modfile.ParseLax`: `retract v`, `retract [lo, hi]` and
/// `retract ( … )` blocks, quotes and `//` comments.
pub fn retract_intervals(data: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or("").trim();
        let entry = if in_block {
            if line.starts_with(')') {
                in_block = false;
                continue;
            }
            line
        } else if let Some(rest) = line.strip_prefix("retract") {
            if !rest.starts_with([' ', '\t', '(', '[', '"']) {
                continue; // another word, such as "retracted"
            }
            let rest = rest.trim();
            if rest == "(" {
                in_block = true;
                continue;
            }
            rest
        } else {
            continue;
        };
        let unquote = |s: &str| s.trim().trim_matches('"').to_owned();
        if let Some(inner) = entry.strip_prefix('[').and_then(|e| e.strip_suffix(']')) {
            if let Some((lo, hi)) = inner.split_once(',') {
                out.push((unquote(lo), unquote(hi)));
            }
        } else if !entry.is_empty() {
            let v = unquote(entry);
            out.push((v.clone(), v));
        }
    }
    out
}

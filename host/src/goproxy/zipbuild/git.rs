//! The files of a module in a git tree, as `codeRepo.Zip` gets them from
//! `git -c core.autocrlf=input -c core.eol=lf archive --format=zip <rev> <subdir>` (with
//! `* -export-subst -export-ignore` in `info/attributes`), read with gix.

use std::path::Path;

use gix::bstr::{BStr, BString, ByteSlice as _};
use gix::filter::plumbing as gix_filter;
use gix::objs::tree::EntryKind;

use super::{BuildError, Candidate, Content, Kind};

/// An open repository positioned at one commit's tree, with the attribute stack of that tree
/// and a filter pipeline configured as the go command configures `git archive`.
pub(super) struct GitTree {
    repo: gix::Repository,
    tree: gix::ObjectId,
    /// `subdir` without slashes at either end (`strings.Trim(subdir, "/")`).
    subdir: String,
    attributes: gix::worktree::Stack,
    pipeline: gix_filter::Pipeline,
    /// Repository-relative path of each listed blob, by object id and path (a blob may occur
    /// under several paths with different attributes).
    paths: Vec<(gix::ObjectId, BString)>,
    next_blob: usize,
}

impl GitTree {
    /// Opens `repo` (bare or not), isolated from the user's and system's git configuration,
    /// and resolves `commit` (hex id or reference name) to its tree.
    pub(super) fn open(repo: &Path, commit: &str, subdir: &str) -> Result<Self, BuildError> {
        let repo = gix::open_opts(repo, gix::open::Options::isolated())
            .map_err(|e| BuildError::Git(format!("opening repository {}: {e}", repo.display())))?;
        let id = match gix::ObjectId::from_hex(commit.as_bytes()) {
            Ok(id) => id,
            Err(_) => repo
                .find_reference(commit)
                .and_then(|mut r| r.peel_to_id())
                .map_err(|e| BuildError::Git(format!("revision {commit:?}: {e}")))?
                .detach(),
        };
        let tree = repo
            .find_object(id)
            .and_then(|o| o.peel_to_tree())
            .map_err(|e| BuildError::Git(format!("revision {commit:?}: {e}")))?
            .id;
        // Attributes come from the archived tree itself (as `git archive` reads them), never
        // from a worktree, plus `$GIT_DIR/info/attributes`.
        let index = repo.index_from_tree(&tree).map_err(BuildError::git)?;
        let attributes = repo
            .attributes_only(
                &index,
                gix::worktree::stack::state::attributes::Source::IdMapping,
            )
            .map_err(BuildError::git)?
            .detach();
        // core.autocrlf=input, core.eol=lf; no external drivers (the go command's cached
        // repositories configure none, and a proxy must not run commands named by a repo).
        let options = gix_filter::pipeline::Options {
            drivers: Vec::new(),
            eol_config: gix_filter::eol::Configuration {
                auto_crlf: gix_filter::eol::AutoCrlf::Input,
                eol: Some(gix_filter::eol::Mode::Lf),
            },
            crlf_roundtrip_check: gix_filter::pipeline::CrlfRoundTripCheck::Skip,
            encodings_with_roundtrip_check: Vec::new(),
        };
        let pipeline = gix_filter::Pipeline::new(
            gix::command::Context::default(),
            repo.object_hash(),
            options,
        );
        Ok(Self {
            repo,
            tree,
            subdir: subdir.trim_matches('/').to_owned(),
            attributes,
            pipeline,
            paths: Vec::new(),
            next_blob: 0,
        })
    }

    /// The files of the module: every blob and symlink below `subdir` in tree order, names
    /// relative to it, then the root `LICENSE` for a subdirectory module without one.
    pub(super) fn list(&mut self) -> Result<Vec<Candidate>, BuildError> {
        let mut files = Vec::new();
        let start = if self.subdir.is_empty() {
            Some(self.tree)
        } else {
            let root = self.repo.find_tree(self.tree).map_err(BuildError::git)?;
            match root
                .lookup_entry_by_path(&self.subdir)
                .map_err(BuildError::git)?
            {
                Some(e) if e.mode().is_tree() => Some(e.object_id()),
                _ => None,
            }
        };
        let Some(start) = start else {
            return Err(BuildError::SubdirNotFound(self.subdir.clone()));
        };
        let prefix: BString = if self.subdir.is_empty() {
            BString::default()
        } else {
            format!("{}/", self.subdir).into()
        };
        self.walk(start, prefix.as_ref(), BStr::new(""), &mut files)?;
        if !self.subdir.is_empty() && !files.iter().any(|f| f.path == "LICENSE") {
            // ReadFile: `git cat-file blob <rev>:LICENSE`, the raw blob (a symlink's target
            // text included), no attributes applied.
            if let Some(data) = self.raw_blob("LICENSE")? {
                files.push(Candidate {
                    path: "LICENSE".into(),
                    utf8: true,
                    kind: Kind::Regular,
                    content: Content::Data(data),
                });
            }
        }
        Ok(files)
    }

    fn walk(
        &mut self,
        tree: gix::ObjectId,
        repo_prefix: &BStr,
        rel_prefix: &BStr,
        files: &mut Vec<Candidate>,
    ) -> Result<(), BuildError> {
        let entries: Vec<(EntryKind, BString, gix::ObjectId)> = {
            let tree = self.repo.find_tree(tree).map_err(BuildError::git)?;
            tree.decode()
                .map_err(BuildError::git)?
                .entries
                .iter()
                .map(|e| (e.mode.kind(), e.filename.to_owned(), e.oid.to_owned()))
                .collect()
        };
        for (kind, name, oid) in entries {
            let mut repo_path = repo_prefix.to_owned();
            repo_path.extend_from_slice(&name);
            let mut rel = rel_prefix.to_owned();
            rel.extend_from_slice(&name);
            let kind = match kind {
                EntryKind::Tree => {
                    repo_path.push(b'/');
                    rel.push(b'/');
                    self.walk(oid, repo_path.as_ref(), rel.as_ref(), files)?;
                    continue;
                }
                // A submodule is an empty directory in the archive: skipped.
                EntryKind::Commit => continue,
                EntryKind::Link => Kind::Symlink,
                EntryKind::Blob | EntryKind::BlobExecutable => Kind::Regular,
            };
            let (path, utf8) = match rel.to_str() {
                Ok(s) => (s.to_owned(), true),
                Err(_) => (rel.to_str_lossy().into_owned(), false),
            };
            let content = if kind == Kind::Regular {
                self.paths.push((oid, repo_path));
                Content::Blob(oid)
            } else {
                Content::None
            };
            files.push(Candidate {
                path,
                utf8,
                kind,
                content,
            });
        }
        Ok(())
    }

    /// The blob at repository path `path` (`git cat-file blob <rev>:<path>`): `None` when there
    /// is no blob there.
    fn raw_blob(&self, path: &str) -> Result<Option<Vec<u8>>, BuildError> {
        let root = self.repo.find_tree(self.tree).map_err(BuildError::git)?;
        let Some(entry) = root.lookup_entry_by_path(path).map_err(BuildError::git)? else {
            return Ok(None);
        };
        if !entry.mode().is_blob_or_symlink() {
            return Ok(None);
        }
        let blob = self
            .repo
            .find_blob(entry.object_id())
            .map_err(BuildError::git)?;
        Ok(Some(blob.data.clone()))
    }

    /// `<subdir>/go.mod` as `codeRepo.GoMod` reads it: the raw blob, or `None`.
    pub(super) fn raw_go_mod(&self) -> Result<Option<Vec<u8>>, BuildError> {
        let path = if self.subdir.is_empty() {
            "go.mod".to_owned()
        } else {
            format!("{}/go.mod", self.subdir)
        };
        self.raw_blob(&path)
    }

    /// The worktree form of blob `id` listed by [`GitTree::list`]: blobs are asked for in the
    /// order they were listed, so the path (for its attributes) is the next one with that id.
    pub(super) fn worktree_blob(&mut self, id: gix::ObjectId) -> Result<Vec<u8>, BuildError> {
        let index = self
            .paths
            .iter()
            .skip(self.next_blob)
            .position(|(oid, _)| *oid == id)
            .map(|i| i + self.next_blob)
            .or_else(|| self.paths.iter().position(|(oid, _)| *oid == id))
            .ok_or_else(|| BuildError::Git(format!("blob {id} was not listed")))?;
        self.next_blob = index + 1;
        let path = self
            .paths
            .get(index)
            .map(|(_, p)| p.clone())
            .unwrap_or_default();
        let data = self
            .repo
            .find_blob(id)
            .map_err(BuildError::git)?
            .data
            .clone();
        // gix's `ident` writes `$Id: <hex>$` and ignores existing expansions; git writes
        // `$Id: <hex> $` and re-expands (convert.c `ident_to_worktree`): done here instead, so
        // gix finds no `$Id$` left to touch.
        let mut ident = self.attributes.selected_attribute_matches(["ident"]);
        let platform = self
            .attributes
            .at_entry(path.as_bstr(), None, &self.repo.objects)
            .map_err(BuildError::git)?;
        platform.matching_attributes(&mut ident);
        let ident_set = ident.iter_selected().any(|m| {
            m.assignment.name.as_str() == "ident"
                && matches!(m.assignment.state, gix::attrs::StateRef::Set)
        });
        let data = if ident_set {
            ident_to_worktree(&data, &id)
        } else {
            data
        };
        let outcome = self
            .pipeline
            .convert_to_worktree(
                &data,
                path.as_bstr(),
                &mut |_, attrs| {
                    platform.matching_attributes(attrs);
                },
                gix_filter::pipeline::convert::to_worktree::Options {
                    can_delay: gix_filter::driver::apply::Delay::Forbid,
                    unknown_encoding:
                        gix_filter::pipeline::convert::to_worktree::UnknownEncoding::Fail,
                },
            )
            .map_err(|e| BuildError::Git(format!("converting {path}: {e}")))?;
        match outcome {
            gix_filter::pipeline::convert::ToWorktreeOutcome::Unchanged(bytes) => {
                Ok(bytes.to_vec())
            }
            gix_filter::pipeline::convert::ToWorktreeOutcome::Buffer(bytes) => Ok(bytes.to_vec()),
            gix_filter::pipeline::convert::ToWorktreeOutcome::Process(_) => Err(BuildError::Git(
                format!("unsupported .gitattributes conversion: filter driver in path {path}"),
            )),
        }
    }
}

/// git's `ident_to_worktree` (convert.c): each `$Id$`, and each `$Id: …$` expansion without a
/// line break or inner spaces, becomes `$Id: <blob id> $`.
pub(super) fn ident_to_worktree(src: &[u8], id: &gix::oid) -> Vec<u8> {
    let hex = id.to_hex().to_string();
    let mut out = Vec::with_capacity(src.len() + 64);
    let mut rest = src;
    let mut changed = false;
    while let Some(dollar) = rest.iter().position(|&b| b == b'$') {
        out.extend_from_slice(&rest[..=dollar]);
        rest = &rest[dollar + 1..];
        if rest.len() < 3 || &rest[..2] != b"Id" {
            continue;
        }
        if rest[2] == b'$' {
            rest = &rest[3..];
        } else if rest[2] == b':' {
            let Some(end) = rest[3..].iter().position(|&b| b == b'$').map(|i| i + 3) else {
                break;
            };
            if rest[3..end].contains(&b'\n') {
                continue;
            }
            // A space other than right before the closing '$': another VCS's id, kept.
            if end > 4 && rest[4..end - 1].contains(&b' ') {
                continue;
            }
            rest = &rest[end + 1..];
        } else {
            continue;
        }
        out.extend_from_slice(b"Id: ");
        out.extend_from_slice(hex.as_bytes());
        out.extend_from_slice(b" $");
        changed = true;
    }
    out.extend_from_slice(rest);
    if changed { out } else { src.to_vec() }
}

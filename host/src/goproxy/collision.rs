//! Name collisions in a module zip (`zip.collisionChecker` in `golang.org/x/mod/zip`): names
//! equal under case folding, duplicates, and paths that are both a file and a directory. Used
//! both when checking untrusted zips and when building zips.

use std::borrow::Cow;
use std::collections::HashMap;

impl Collision {
    /// Go's wording (`zip.CreateFromDir`'s errors), for zips modgate builds.
    pub fn go_message(&self) -> String {
        match self {
            Collision::CaseFold { earlier, name } => {
                format!("case-insensitive file name collision: {earlier:?} and {name:?}")
            }
            Collision::FileAndDirectory { name } => {
                format!("entry {name:?} is both a file and a directory")
            }
            Collision::Duplicate { name } => format!("multiple entries for file {name:?}"),
        }
    }
}

/// A collision found by [`Collisions::check`]; callers phrase it for their context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Collision {
    /// `earlier` and `name` differ only in case.
    CaseFold { earlier: String, name: String },
    /// `name` is both a file and a directory.
    FileAndDirectory { name: String },
    /// The file `name` appears twice.
    Duplicate { name: String },
}

/// `zip.collisionChecker`: finds names equal under case folding, and paths that are both a file
/// and a directory (a file `a` next to `a/b`). Keys are folded names; values the original name
/// and whether it is a directory.
#[derive(Default)]
pub struct Collisions(HashMap<String, (String, bool)>);

impl Collisions {
    /// Records `p` and every parent directory of it.
    pub fn check(&mut self, p: &str, is_dir: bool) -> Result<(), Collision> {
        let mut p = p;
        let mut is_dir = is_dir;
        loop {
            let key = fold(p);
            if let Some((other, other_is_dir)) = self.0.get(key.as_ref()) {
                if p != other {
                    return Err(Collision::CaseFold {
                        earlier: other.clone(),
                        name: p.to_owned(),
                    });
                }
                if is_dir != *other_is_dir {
                    return Err(Collision::FileAndDirectory { name: p.to_owned() });
                }
                if !is_dir {
                    return Err(Collision::Duplicate { name: p.to_owned() });
                }
                // A directory seen before had its parents recorded then: Go re-walks them
                // without finding anything new.
                return Ok(());
            }
            self.0.insert(key.into_owned(), (p.to_owned(), is_dir));
            match p.rfind('/') {
                Some(i) => {
                    p = p.get(..i).unwrap_or_default();
                    is_dir = true;
                }
                None => return Ok(()),
            }
        }
    }
}

/// A key with `fold(s) == fold(t)` iff `s` and `t` are equal under Unicode simple case folding
/// (Go's `strToFold`, used for `strings.EqualFold`).
///
/// Go maps each rune to the smallest member of its `unicode.SimpleFold` orbit. Rust's standard
/// library has no simple folding, so each char is mapped to the lowercase of its uppercase, using
/// a mapping only when it is a single char (multi-char results are full case mappings, which
/// simple folding ignores), and the Turkic dotted/dotless i, whose folds are Turkic-only, stay
/// apart. Checked exhaustively against Go 1.26: the classes are the same for every rune
/// `unicode.IsLetter` accepts, the only non-ASCII runes `module.CheckFilePath` lets through.
/// (They may differ for letters newer than Go's Unicode tables, which Go rejects anyway.)
pub fn fold(s: &str) -> Cow<'_, str> {
    // Fast path, as in Go: ASCII without upper case folds to itself.
    if s.bytes().all(|c| c.is_ascii() && !c.is_ascii_uppercase()) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().map(fold_char).collect())
}

fn fold_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    if c == 'ı' || c == 'İ' {
        return c;
    }
    let upper = single(c.to_uppercase()).unwrap_or(c);
    single(upper.to_lowercase()).unwrap_or(upper)
}

fn single(mut chars: impl Iterator<Item = char>) -> Option<char> {
    let first = chars.next()?;
    chars.next().is_none().then_some(first)
}

//! Email addresses that look like the same person typed differently.
//!
//! A declaration edit that unassigns `ada@example.com` and invites
//! `ada@exmaple.com` in the same run is almost always a typo: the real
//! developer loses access and a stranger's address gets an invitation. The
//! planner pairs such addresses with [`Index`] and blocks both changes until
//! someone confirms the rename.
//!
//! Two addresses look alike when they differ and
//! - their local parts are equal (the domain changed: `@mock.exmaple`), or
//! - their domains are equal and their local parts one typing slip apart
//!   (`grcae@` for `grace@`).
//!
//! A slip is one inserted, deleted or replaced letter, or two adjacent
//! characters swapped. Slips in digits do not count: `dev004` and `dev005`
//! are two numbered accounts, not a typo. Lookups go through deletion
//! neighbourhoods, so pairing n invitations with m holders costs
//! O((n + m) · length · log m), not O(n · m).

use std::hash::{BuildHasher, Hasher};

use super::hashing::Seeded;
use crate::model::Email;

/// At most this many holders are examined per key: enough to find every
/// realistic look-alike, bounded for adversarial input (thousands of holders
/// sharing one local part).
const MAX_CANDIDATES_PER_KEY: usize = 64;

/// Holders' addresses, indexed for look-alike queries. Keys are hashes of
/// the local part's deletion neighbourhood, so indexing allocates no
/// strings; a hash collision only adds a candidate, which `looks_alike`
/// then rejects. The index is one sorted list of (key, holder) pairs, not
/// a map of lists: 100,000 holders make a million keys.
pub struct Index<'a> {
    emails: Vec<&'a Email>,
    /// (key, place in `emails`), sorted by key, then by place.
    keys: Vec<(u64, u32)>,
    hasher: Seeded,
}

impl<'a> Index<'a> {
    pub fn new(emails: impl IntoIterator<Item = &'a Email>) -> Self {
        let hasher = Seeded::default();
        let emails: Vec<&'a Email> = emails.into_iter().collect();
        let mut keys = Vec::with_capacity(emails.len() * 10);
        let mut mine = Keys::default();
        for (i, email) in (0u32..).zip(&emails) {
            mine.of(&hasher, email);
            keys.extend(mine.keys.iter().map(|k| (*k, i)));
        }
        keys.sort_unstable();
        Index {
            emails,
            keys,
            hasher,
        }
    }

    /// Every indexed address that looks like `email`, sorted, without
    /// duplicates.
    pub fn matches(&self, email: &Email) -> Vec<&'a Email> {
        let mut mine = Keys::default();
        mine.of(&self.hasher, email);
        let mut out: Vec<&'a Email> = mine
            .keys
            .iter()
            .flat_map(|k| {
                let from = self.keys.partition_point(|(key, _)| key < k);
                self.keys[from..]
                    .iter()
                    .take_while(move |(key, _)| key == k)
                    .take(MAX_CANDIDATES_PER_KEY)
            })
            .filter_map(|(_, i)| self.emails.get(*i as usize).copied())
            .filter(|candidate| looks_alike(candidate, email))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// An address's keys: its local part itself and each one-character
/// deletion of it, hashed, without repeats (deleting either `a` of `aab` is
/// one key). Two local parts within one slip of each other always share a
/// key. The deletions are spelled out in one reused buffer and hashed as
/// whole strings, so a deletion that equals another address's whole local
/// part (the inserted-character case) gets that address's key.
#[derive(Default)]
struct Keys {
    keys: Vec<u64>,
    spelled: Vec<u8>,
}

impl Keys {
    fn of(&mut self, hasher: &Seeded, email: &Email) {
        let local = split(email).0;
        self.keys.clear();
        self.keys.reserve(local.len() + 1);
        self.keys.push(hash(hasher, local.as_bytes()));
        for (i, c) in local.char_indices() {
            self.spelled.clear();
            self.spelled.extend_from_slice(&local.as_bytes()[..i]);
            self.spelled
                .extend_from_slice(&local.as_bytes()[i + c.len_utf8()..]);
            self.keys.push(hash(hasher, &self.spelled));
        }
        self.keys.sort_unstable();
        self.keys.dedup();
    }
}

fn hash(hasher: &Seeded, bytes: &[u8]) -> u64 {
    let mut h = hasher.build_hasher();
    h.write(bytes);
    h.finish()
}

/// Whether two different addresses look like one person's (see module docs).
pub fn looks_alike(a: &Email, b: &Email) -> bool {
    if a == b {
        return false;
    }
    let (al, ad) = split(a);
    let (bl, bd) = split(b);
    al == bl || (ad == bd && one_letter_slip(al, bl))
}

fn split(e: &Email) -> (&str, &str) {
    e.as_str().rsplit_once('@').unwrap_or((e.as_str(), ""))
}

/// Optimal-string-alignment distance exactly 1, where what differs is not
/// only digits. Addresses are nearly always ASCII: their bytes are compared
/// as they are, without collecting characters.
fn one_letter_slip(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return slip(a.as_bytes(), b.as_bytes(), u8::is_ascii_digit);
    }
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    slip(&a, &b, char::is_ascii_digit)
}

fn slip<T: Copy + PartialEq>(a: &[T], b: &[T], digit: impl Fn(&T) -> bool) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    match long.len() - short.len() {
        0 => {
            let mut diffs = (0..a.len()).filter(|&i| a[i] != b[i]);
            match (diffs.next(), diffs.next(), diffs.next()) {
                (Some(i), None, _) => !(digit(&a[i]) && digit(&b[i])),
                (Some(i), Some(j), None) => {
                    j == i + 1 && a[i] == b[j] && a[j] == b[i] && !(digit(&a[i]) && digit(&a[j]))
                }
                _ => false,
            }
        }
        1 => {
            let first = (0..short.len())
                .find(|&i| short[i] != long[i])
                .unwrap_or(short.len());
            short[first..] == long[first + 1..] && !digit(&long[first])
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(s: &str) -> Email {
        Email::parse(s).unwrap()
    }

    #[test]
    fn a_changed_domain_with_the_same_local_part_looks_alike() {
        assert!(looks_alike(&e("ada@mock.example"), &e("ada@mock.exmaple")));
        assert!(looks_alike(&e("ada@corp.example"), &e("ada@gmail.example")));
    }

    #[test]
    fn one_slip_in_the_local_part_looks_alike() {
        for other in [
            "adaa@example.com",
            "da@example.com",
            "aba@example.com",
            "aad@example.com",
        ] {
            assert!(looks_alike(&e("ada@example.com"), &e(other)), "{other}");
        }
    }

    #[test]
    fn numbered_accounts_are_different_people() {
        assert!(!looks_alike(
            &e("dev004@example.com"),
            &e("dev005@example.com")
        ));
        assert!(!looks_alike(
            &e("u12345@example.com"),
            &e("u12354@example.com")
        ));
        assert!(!looks_alike(
            &e("dev1@example.com"),
            &e("dev12@example.com")
        ));
    }

    #[test]
    fn different_people_do_not_look_alike() {
        for (a, b) in [
            ("ada@example.com", "grace@example.com"),
            ("ada@example.com", "ada@example.com"),
            ("ada@example.com", "adam@other.org"),
            ("bob@example.com", "rob@elsewhere.org"),
            ("ab@example.com", "ba@example.org"),
            ("ada@example.com", "adb@exmaple.com"),
        ] {
            assert!(!looks_alike(&e(a), &e(b)), "{a} {b}");
        }
    }

    #[test]
    fn the_index_finds_every_look_alike_and_only_those() {
        let holders = [
            e("ada@example.com"),
            e("grace@example.com"),
            e("gracee@example.com"),
            e("bob@example.com"),
        ];
        let index = Index::new(holders.iter());
        let found = |s: &str| -> Vec<String> {
            index
                .matches(&e(s))
                .into_iter()
                .map(|m| m.to_string())
                .collect()
        };
        assert_eq!(found("ada@exmaple.com"), ["ada@example.com"]);
        assert_eq!(found("grcae@example.com"), ["grace@example.com"]);
        assert_eq!(found("grace@exmaple.com"), ["grace@example.com"]);
        assert_eq!(found("grce@example.com"), ["grace@example.com"]);
        assert_eq!(
            found("gracae@example.com"),
            ["grace@example.com", "gracee@example.com"]
        );
        assert!(found("erin@example.com").is_empty());
        // Agrees with the pairwise definition on every pair.
        for h in &holders {
            for q in ["ada@exmaple.com", "bbo@example.com", "bob@example.com"] {
                assert_eq!(
                    index.matches(&e(q)).contains(&h),
                    looks_alike(h, &e(q)),
                    "{h} {q}"
                );
            }
        }
    }
}

//! Subscription tokens: `v1.<base64url(channel)>.<expiry, unix seconds>.<base64url(mac)>`,
//! the MAC being HMAC-SHA256 over `v1.<base64url(channel)>.<expiry>` with
//! the hub's secret. Every pod shares the secret, so a token minted on one
//! is accepted on whichever pod the client reconnects to, and the hub never
//! asks the host about a connection. The MAC is checked in constant time
//! (`hmac`'s `verify_slice`) before anything it covers is trusted.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "v1";
/// A token is small: no reason to decode anything longer.
const MAX_TOKEN_LEN: usize = 4096;

/// The longest token [`mint`] makes: the version and three dots, the
/// longest channel in base64url without padding (4 characters for each 3
/// bytes, rounded up), an expiry of 20 digits (`u64::MAX`) and the 32-byte
/// MAC in base64url (43 characters).
pub(crate) const MINTED_LEN_MAX: usize =
    VERSION.len() + 3 + (super::CHANNEL_LEN_MAX * 4).div_ceil(3) + 20 + 43;

/// Why a token was refused; each maps to one HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenError {
    /// No token at all (401).
    Missing,
    /// Not of the token's shape (401).
    Malformed,
    /// The MAC does not match: not minted with this secret (403).
    Forged,
    /// Past its expiry (401: the client should get a fresh one).
    Expired,
    /// A valid token for another channel (403).
    OtherChannel,
}

impl TokenError {
    /// The HTTP status and the machine-readable code of the JSON error.
    pub(crate) fn answer(self) -> (u16, &'static str) {
        match self {
            TokenError::Missing => (401, "token_missing"),
            TokenError::Malformed => (401, "token_malformed"),
            TokenError::Expired => (401, "token_expired"),
            TokenError::Forged => (403, "token_invalid"),
            TokenError::OtherChannel => (403, "token_wrong_channel"),
        }
    }
}

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length.
    HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A token for `channel` valid for `ttl` from now.
pub(crate) fn mint(secret: &[u8], channel: &str, ttl: Duration) -> String {
    // Rounded up: a lifetime of 1.5 s is not cut to 1 s. Saturating: a
    // host's `Duration::MAX` overflowed here (a panic in a debug build, a
    // token already expired in a release one).
    let seconds = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    mint_expiring(secret, channel, unix_now().saturating_add(seconds))
}

/// A token for `channel` that expires at `expiry` (unix seconds).
pub(crate) fn mint_expiring(secret: &[u8], channel: &str, expiry: u64) -> String {
    let signed = format!(
        "{VERSION}.{}.{expiry}",
        URL_SAFE_NO_PAD.encode(channel.as_bytes())
    );
    let mut mac = mac(secret);
    mac.update(signed.as_bytes());
    let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signed}.{tag}")
}

/// Checks `token` for `channel`: the MAC first (constant time), then the
/// expiry, then the channel.
pub(crate) fn verify(secret: &[u8], token: &str, channel: &str) -> Result<(), TokenError> {
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let (signed, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let mut parts = signed.split('.');
    let (Some(version), Some(encoded_channel), Some(expiry), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    if version != VERSION {
        return Err(TokenError::Malformed);
    }
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| TokenError::Malformed)?;
    let mut mac = mac(secret);
    mac.update(signed.as_bytes());
    mac.verify_slice(&tag).map_err(|_| TokenError::Forged)?;
    // Signed by us from here on.
    let expiry: u64 = expiry.parse().map_err(|_| TokenError::Malformed)?;
    if expiry <= unix_now() {
        return Err(TokenError::Expired);
    }
    let named = URL_SAFE_NO_PAD
        .decode(encoded_channel)
        .map_err(|_| TokenError::Malformed)?;
    if named != channel.as_bytes() {
        return Err(TokenError::OtherChannel);
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_longest_channel_with_the_farthest_expiry_fits_the_stated_bound() {
        let longest = "x".repeat(super::super::CHANNEL_LEN_MAX);
        let token = mint_expiring(b"a secret", &longest, u64::MAX);
        assert_eq!(token.len(), MINTED_LEN_MAX);
        assert_eq!(MINTED_LEN_MAX, 335);
        // And through `mint`, whatever the ttl.
        assert!(mint(b"a secret", &longest, Duration::MAX).len() <= MINTED_LEN_MAX);
    }
    use super::*;

    const SECRET: &[u8] = b"a shared secret";

    #[test]
    fn a_minted_token_verifies_for_its_channel_only() {
        let token = mint(SECRET, "task-1", Duration::from_secs(60));
        assert_eq!(verify(SECRET, &token, "task-1"), Ok(()));
        assert_eq!(
            verify(SECRET, &token, "task-2"),
            Err(TokenError::OtherChannel)
        );
        assert_eq!(
            verify(b"another secret", &token, "task-1"),
            Err(TokenError::Forged)
        );
    }

    #[test]
    fn expired_forged_and_malformed_tokens_are_refused() {
        let expired = mint_expiring(SECRET, "c", unix_now() - 1);
        assert_eq!(verify(SECRET, &expired, "c"), Err(TokenError::Expired));
        // Moving the expiry forward breaks the MAC.
        let later = expired.replace(
            &format!(".{}.", unix_now() - 1),
            &format!(".{}.", unix_now() + 3600),
        );
        assert_eq!(verify(SECRET, &later, "c"), Err(TokenError::Forged));
        // So does pointing it at another channel.
        let good = mint(SECRET, "c", Duration::from_secs(60));
        let other = good.replacen(
            &URL_SAFE_NO_PAD.encode(b"c"),
            &URL_SAFE_NO_PAD.encode(b"d"),
            1,
        );
        assert_eq!(verify(SECRET, &other, "d"), Err(TokenError::Forged));
        assert_eq!(verify(SECRET, "", "c"), Err(TokenError::Missing));
        for bad in [
            "v1",
            "v1.Yw.1.!!!",
            "v2.Yw.99999999999.AAAA",
            "a.b.c.d.e",
            &"x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert_eq!(
                verify(SECRET, bad, "c"),
                Err(TokenError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn verification_goes_through_the_crates_constant_time_comparison() {
        // A tag that differs only in its last byte is refused like one that
        // differs in its first: `verify_slice` compares every byte with
        // `subtle`'s constant-time equality, never stopping at the first
        // difference.
        let token = mint(SECRET, "c", Duration::from_secs(60));
        let (signed, tag) = token.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(tag).unwrap();
        for index in [0, bytes.len() - 1] {
            bytes[index] ^= 1;
            let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&bytes));
            assert_eq!(verify(SECRET, &forged, "c"), Err(TokenError::Forged));
            bytes[index] ^= 1;
        }
        // A truncated tag is a mismatch, not a prefix match.
        let short = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&bytes[..16]));
        assert_eq!(verify(SECRET, &short, "c"), Err(TokenError::Forged));
    }

    /// Property tests (256 cases each in `make test`, more in `make fuzz`):
    /// a token verifies exactly when it was minted with the secret for the
    /// channel and has not expired; anything else, any string at all, is
    /// refused without a panic, with the answer its shape calls for.
    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Secrets as the hub takes them (32 bytes or more). No NUL byte:
        /// HMAC pads a short key with zeros, so `k` and `k\0` are one key.
        fn secret() -> impl Strategy<Value = Vec<u8>> {
            proptest::collection::vec(1u8..=255, 32..100)
        }

        fn assert_refused(
            result: Result<(), TokenError>,
            token: &str,
        ) -> Result<(), TestCaseError> {
            prop_assert!(result.is_err(), "accepted: {:?}", token);
            if token.is_empty() {
                prop_assert_eq!(result, Err(TokenError::Missing));
            } else if token.len() > MAX_TOKEN_LEN {
                prop_assert_eq!(result, Err(TokenError::Malformed));
            }
            Ok(())
        }

        proptest! {
            #[test]
            fn fuzz_a_minted_token_verifies_until_it_expires_for_its_channel_and_secret_only(
                secret in secret(),
                other_secret in secret(),
                channel in any::<String>(),
                other_channel in any::<String>(),
                // Away from the present second, which a slow run may cross.
                lifetime in prop_oneof![-100_000i64..=-1, 3i64..=100_000],
            ) {
                let expiry = unix_now().saturating_add_signed(lifetime);
                let token = mint_expiring(&secret, &channel, expiry);
                if lifetime > 0 {
                    prop_assert_eq!(verify(&secret, &token, &channel), Ok(()));
                    if other_channel != channel {
                        prop_assert_eq!(verify(&secret, &token, &other_channel), Err(TokenError::OtherChannel));
                    }
                } else {
                    prop_assert_eq!(verify(&secret, &token, &channel), Err(TokenError::Expired));
                }
                if other_secret != secret {
                    prop_assert_eq!(verify(&other_secret, &token, &channel), Err(TokenError::Forged));
                }
            }

            #[test]
            fn fuzz_any_string_is_refused_without_panic(
                secret in secret(),
                token in prop_oneof![
                    any::<String>(),
                    // Of the token's shape, with a tag the secret never made.
                    "v[0-9]\\.[A-Za-z0-9_=+/-]{0,30}\\.[0-9+ -]{0,22}\\.[A-Za-z0-9_=+/-]{0,60}",
                    "[.]{0,6}",
                    "x{4090,4100}",
                ],
                channel in "[a-z]{1,8}",
            ) {
                let result = verify(&secret, &token, &channel);
                assert_refused(result, &token)?;
            }

            #[test]
            fn fuzz_any_change_to_a_token_is_refused(
                secret in secret(),
                channel in "[A-Za-z0-9._~:-]{1,40}",
                at in any::<proptest::sample::Index>(),
                change in prop_oneof![
                    any::<char>().prop_map(Some),
                    Just(None),
                ],
                insert in any::<bool>(),
            ) {
                let token = mint(&secret, &channel, Duration::from_secs(3600));
                let mut chars: Vec<char> = token.chars().collect();
                let index = at.index(chars.len());
                match (change, insert) {
                    (Some(c), true) => chars.insert(index, c),
                    (Some(c), false) => chars[index] = c,
                    (None, _) => {
                        chars.remove(index);
                    }
                }
                let changed: String = chars.into_iter().collect();
                prop_assume!(changed != token);
                assert_refused(verify(&secret, &changed, &channel), &changed)?;
            }
        }
    }
}

//! What a test run must cover. A test that loops over the kernel paths this CPU supports
//! passes having checked nothing on a CPU without them, so CI names the paths the CPU has in
//! `BITNET_REQUIRE_PATHS` (derived from the CPU flags by `scripts/kernel-paths`, not by
//! [`KernelPath::is_supported`]) and each such test calls [`check_required_paths`] with the
//! paths it is about to run.

use crate::KernelPath;

/// The variable naming the required paths: [`KernelPath::name`]s separated by commas or
/// spaces (`avx2,avx512-vnni`); unset or empty requires nothing.
pub const REQUIRE_PATHS_VAR: &str = "BITNET_REQUIRE_PATHS";

/// Parses a list of path names separated by commas or whitespace.
pub fn parse_path_list(list: &str) -> Result<Vec<KernelPath>, String> {
    list.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|name| !name.is_empty())
        .map(|name| {
            KernelPath::from_name(name).ok_or_else(|| {
                let known: Vec<&str> = KernelPath::ALL.iter().map(|p| p.name()).collect();
                format!(
                    "{REQUIRE_PATHS_VAR}: unknown kernel path {name:?} (known: {})",
                    known.join(", ")
                )
            })
        })
        .collect()
}

/// The paths `BITNET_REQUIRE_PATHS` names (none when it is unset).
pub fn required_paths_from_env() -> Result<Vec<KernelPath>, String> {
    match std::env::var(REQUIRE_PATHS_VAR) {
        Ok(list) => parse_path_list(&list),
        Err(std::env::VarError::NotPresent) => Ok(Vec::new()),
        Err(e) => Err(format!("{REQUIRE_PATHS_VAR}: {e}")),
    }
}

/// Fails, naming every path `required` lists that `covered` lacks and whether this CPU
/// reports it supported (a test that skipped it) or not (a CPU check that disagrees with
/// the CPU's flags).
pub fn check_covers(required: &[KernelPath], covered: &[KernelPath]) -> Result<(), String> {
    let missing: Vec<String> = required
        .iter()
        .filter(|p| !covered.contains(p))
        .map(|p| {
            let why = if p.is_supported() {
                "supported, but this test skipped it"
            } else {
                "not supported according to this build's CPU check"
            };
            format!("{} ({why})", p.name())
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let ran: Vec<&str> = covered.iter().map(|p| p.name()).collect();
    Err(format!(
        "{REQUIRE_PATHS_VAR} requires kernel paths this test does not run: {}; it runs [{}]",
        missing.join(", "),
        ran.join(", ")
    ))
}

/// [`check_covers`] against the paths `BITNET_REQUIRE_PATHS` names.
pub fn check_required_paths(covered: &[KernelPath]) -> Result<(), String> {
    check_covers(&required_paths_from_env()?, covered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_separated_by_commas_or_spaces() {
        assert_eq!(
            parse_path_list(" avx2,AVX512-vnni  amx-int8,,").unwrap(),
            [KernelPath::Avx2, KernelPath::Avx512Vnni, KernelPath::Amx]
        );
        assert_eq!(parse_path_list("").unwrap(), []);
    }

    #[test]
    fn an_unknown_name_is_an_error_naming_it() {
        let e = parse_path_list("avx2,sse9").unwrap_err();
        assert!(e.contains("\"sse9\""), "{e}");
        assert!(e.contains("neon-dotprod"), "{e}");
    }

    #[test]
    fn a_missing_path_is_named() {
        let required = [KernelPath::Neon, KernelPath::Avx2];
        assert!(check_covers(&required, &[KernelPath::Avx2, KernelPath::Neon]).is_ok());
        let e = check_covers(&required, &[KernelPath::Avx2]).unwrap_err();
        assert!(e.contains("neon ("), "{e}");
        assert!(!e.contains("avx2 ("), "{e}");
        assert!(check_covers(&[], &[]).is_ok());
    }
}

# Shared by the drill scripts (sourced, not run): the coffer-bench binary and the
# output directory.
#
# COFFER_BENCH   a coffer-bench binary to use (default: build it, release profile)
# COFFER_DRILL_DIR  where kms-chaos-YYYYMMDD-HHMM/ is made (default: the current dir)
# --out DIR      (first argument) the drill's own directory instead

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

bench() {
  if [ -n "${COFFER_BENCH:-}" ]; then
    printf '%s\n' "$COFFER_BENCH"
    return
  fi
  (cd "$root" && cargo build --quiet --release -p coffer-bench --bin coffer-bench) >&2
  printf '%s\n' "${CARGO_TARGET_DIR:-$root/target}/release/coffer-bench"
}

# out_dir NAME ARGS…: prints the directory for drill NAME; `--out DIR` as the first
# argument wins (the caller shifts it away).
out_dir() {
  local name="$1"
  shift
  if [ "${1:-}" = "--out" ] && [ -n "${2:-}" ]; then
    printf '%s\n' "$2"
  else
    printf '%s/kms-chaos-%s/%s\n' "${COFFER_DRILL_DIR:-.}" "$(date -u +%Y%m%d-%H%M)" "$name"
  fi
}

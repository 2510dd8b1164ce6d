#!/usr/bin/env bash
# Builds and runs the Palisade vs Limitador bench (see README.md). Limitador 0.14.0 does not
# compile with `redis_storage` alone (src/storage/keys.rs calls its `bin` module, which is
# behind `disk_storage`, i.e. RocksDB, and so is `Counter::variables_for_key` that it uses): this script fetches the crate from crates.io into
# cargo's registry, copies it into target/ with those two `cfg`s widened to `redis_storage`,
# and Cargo.toml patches crates.io's limitador with the copy. Nothing of Limitador's is
# committed here.
# Usage: bash run.sh [bench options...]   (CARGO names the cargo to build with)
set -euo pipefail
cd "$(dirname "$0")"
CARGO=${CARGO:-cargo}
PATCHED=target/limitador-0.14.0-patched
if [[ ! -f $PATCHED/.patched ]]; then
  # Fetch limitador 0.14.0 through a throwaway manifest (the real one is patched).
  mkdir -p target/fetch/src && : > target/fetch/src/lib.rs
  printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n[workspace]\n[dependencies]\nlimitador = { version = "=0.14.0", default-features = false }\n' > target/fetch/Cargo.toml
  "$CARGO" fetch -q --manifest-path target/fetch/Cargo.toml
  SRC=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/limitador-0.14.0 | head -1)
  rm -rf "$PATCHED" && cp -r "$SRC" "$PATCHED"
  python3 - "$PATCHED/src" <<'PY'
import sys
src = sys.argv[1]
for path, item in [("storage/keys.rs", "pub mod bin {"),
                   ("counter.rs", "    pub(crate) fn variables_for_key(")]:
    p = f"{src}/{path}"
    s = open(p).read()
    indent = item[: len(item) - len(item.lstrip())]
    old = f'{indent}#[cfg(feature = "disk_storage")]\n{item}'
    assert old in s, f"limitador's {path} changed: check the patch"
    new = f'{indent}#[cfg(any(feature = "disk_storage", feature = "redis_storage"))]\n{item}'
    open(p, 'w').write(s.replace(old, new))
PY
  touch "$PATCHED/.patched"
fi
"$CARGO" build --release -q
exec target/release/rls-vs-limitador "$@"

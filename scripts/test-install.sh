#!/usr/bin/env bash
# The installed package as a user meets it (CTest `install_package`, label install): installs
# BUILD_DIR into a temporary prefix, checks that each public header compiles alone with only the
# installed include folder, builds examples/embed out of tree with find_package(dagent CONFIG) and
# with pkg-config alone, runs both on a temporary workspace, then builds the .deb and lists it.
# Usage: scripts/test-install.sh BUILD_DIR
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:?usage: scripts/test-install.sh BUILD_DIR}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
launcher=()
command -v ccache >/dev/null && launcher=(ccache)
fail() { echo "test-install: $*" >&2; exit 1; }

# What `cmake --install` installs (`all` builds it; a build of only the tests may not have).
cmake --build "$build" --target dagent dagent_shared >/dev/null
cmake --install "$build" --prefix "$prefix" >/dev/null
pc=$(find "$prefix" -name dagent.pc)
[ -n "$pc" ] || fail "no dagent.pc installed"
libdir=$(dirname "$(dirname "$pc")")
for f in "$libdir"/libdagent.so "$libdir"/libdagent.so.0 "$libdir"/cmake/dagent/dagentConfig.cmake \
         "$libdir"/cmake/dagent/dagentConfigVersion.cmake "$libdir"/cmake/dagent/dagentTargets.cmake \
         "$prefix"/include/dagent/dagent.hpp "$prefix"/bin/dagent; do
  [ -e "$f" ] || fail "not installed: ${f#"$prefix"/}"
done
[ "$(readlink "$libdir"/libdagent.so.0)" = "libdagent.so.0.1.0" ] || fail "libdagent.so.0 is not the versioned library"
# Each tool's output is read whole before grep looks at it: `cmd | grep -q` under pipefail fails
# when grep stops reading early and cmd dies of SIGPIPE (it did, 2 runs in ~8).
grep -q 'SONAME *libdagent.so.0$' <<<"$(objdump -p "$libdir"/libdagent.so)" || fail "libdagent.so has no SONAME libdagent.so.0"
grep -q '^dagent ' <<<"$("$prefix"/bin/dagent --version)" || fail "the installed dagent does not run"

# Each public header alone, with the installed include folder only (no src/, no source tree).
defines=(-DBOOST_ASIO_SEPARATE_COMPILATION -DBOOST_BEAST_SEPARATE_COMPILATION -DBOOST_ASIO_NO_DEPRECATED)
headers=0
for h in "$prefix"/include/dagent/*.hpp; do
  printf '#include "dagent/%s"\n' "$(basename "$h")" >"$tmp/alone.cpp"
  c++ -std=c++20 -fsyntax-only -I"$prefix/include" "${defines[@]}" "$tmp/alone.cpp" ||
    fail "include/dagent/$(basename "$h") does not compile alone against the installed headers"
  headers=$((headers + 1))
done
[ "$headers" -ge 8 ] || fail "only $headers public headers installed"
if grep -n '#include "' "$prefix"/include/dagent/*.hpp | grep -v '#include "dagent/'; then
  fail "a public header includes something outside dagent/"
fi

# The example, built out of tree: CMake package, then pkg-config only.
cmake -S "$src/examples/embed" -B "$tmp/embed-cmake" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_COMPILER_LAUNCHER="${launcher[*]}" >/dev/null
cmake --build "$tmp/embed-cmake" >/dev/null
export PKG_CONFIG_PATH=$libdir/pkgconfig
# shellcheck disable=SC2046  # pkg-config's words are separate arguments
"${launcher[@]}" c++ -o "$tmp/embed-pc" "$src/examples/embed/embed_example.cpp" $(pkg-config --cflags --libs dagent)

for exe in "$tmp/embed-cmake/embed_example" "$tmp/embed-pc"; do
  grep -q "libdagent.so.0 => $libdir/libdagent.so.0" <<<"$(LD_LIBRARY_PATH=$libdir ldd "$exe")" || fail "$exe does not load the installed libdagent.so.0"
  ws=$tmp/ws-$(basename "$exe")
  mkdir -p "$ws"
  printf 'one two three four\n' >"$ws/notes.txt"
  LD_LIBRARY_PATH=$libdir "$exe" "$ws" >"$tmp/out.txt" || { cat "$tmp/out.txt" >&2; fail "$exe failed"; }
  grep -q '^step 2 word_count: succeeded {"words":4}$' "$tmp/out.txt" || { cat "$tmp/out.txt" >&2; fail "$exe: no word count"; }
  grep -q '^event step=3 action=write_file status=succeeded$' "$tmp/out.txt" || fail "$exe: no step events"
  [ "$(cat "$ws/out/count.json")" = '{"words": 4}' ] || fail "$exe: out/count.json is $(cat "$ws/out/count.json")"
done

# The .deb (not installed): its files and its Depends.
(cd "$tmp" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/deb" >/dev/null)
deb=$(find "$tmp/deb" -maxdepth 1 -name 'dagent_*.deb')
[ -n "$deb" ] || fail "cpack made no dagent_*.deb"
listing=$(dpkg-deb -c "$deb")
for f in ./usr/bin/dagent ./usr/include/dagent/dagent.hpp ./usr/include/dagent/runtime.hpp \
         "./usr/${libdir#"$prefix"/}/libdagent.so.0.1.0" "./usr/${libdir#"$prefix"/}/cmake/dagent/dagentConfig.cmake" \
         "./usr/${libdir#"$prefix"/}/cmake/dagent/dagentTargets.cmake" "./usr/${libdir#"$prefix"/}/pkgconfig/dagent.pc"; do
  grep -q " $f\( \|$\)" <<<"$listing" || fail "the .deb does not hold $f"
done
depends=$(dpkg-deb -f "$deb" Depends)
for d in libboost1.81-dev libboost-json1.81-dev libyaml-cpp0.7 libssl3; do
  grep -q "$d" <<<"$depends" || fail "the .deb's Depends lacks $d: $depends"
done
echo "test-install: ok ($headers headers alone, CMake and pkg-config builds ran, $(basename "$deb"): Depends: $depends)"

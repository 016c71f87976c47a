#!/usr/bin/env bash
# Installs those of the given Debian packages that are missing (with sudo when not root).
# Usage: scripts/install-packages.sh PACKAGE...   (used by setup.sh and fuzz.sh)
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0
echo "$(basename "${0%.sh}"): installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
# Packages such as nginx start their service on install; the tests start their own on
# loopback, so forbid service starts for the duration of the install.
guard=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  guard=1
fi
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
[ -z "$guard" ] || $sudo rm -f /usr/sbin/policy-rc.d

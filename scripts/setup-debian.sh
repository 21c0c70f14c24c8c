#!/usr/bin/env bash
# Installs the Debian 12 packages adnn needs. Idempotent: does nothing when all are present.
# Nothing is downloaded except through apt from Debian's archive.
set -euo pipefail
pkgs=(build-essential g++ cmake ninja-build ccache pkg-config
      libstb-dev doctest-dev libbenchmark-dev libopenblas-dev libboost-context-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "adnn setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "adnn setup: all Debian packages present"
fi

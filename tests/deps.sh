#!/usr/bin/env bash
# Installs the Debian packages voicebridge builds, tests and benchmarks with, if any are missing.
# As root it runs apt-get; otherwise it prints the exact command to run and fails.
set -eu
pkgs=(build-essential libuv1-dev libwslay-dev libmbedtls-dev libhiredis-dev libjansson-dev
      node-llhttp redis-server haproxy sox espeak-ng clang libclang-rt-14-dev pkg-config
      libsoxr-dev libspeexdsp-dev python3 python3-websockets python3-twilio python3-numpy openssl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: missing packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: run as root:  apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"

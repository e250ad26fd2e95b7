#!/bin/sh
# Makes a throwaway PKI for tests in DIR: a test CA (ca.crt, ca.key), a server certificate it
# signed for HOST (default localhost, plus IP 127.0.0.1) as server.crt/server.key, and an
# unrelated CA (other-ca.crt) for "unknown CA" tests. P-256 keys: quick to make. Valid 2 days.
# Usage: make-test-ca.sh DIR [HOST]
set -eu
dir=$1
host=${2:-localhost}
mkdir -p "$dir"
cd "$dir"
exec 3>&2 2>openssl.log   # openssl is chatty; keep its words for a failure
gen_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
gen_ca() { # key cert cn
  gen_key "$1"
  openssl req -x509 -new -key "$1" -sha256 -days 2 -subj "/CN=$3" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -out "$2"
}
gen_ca ca.key ca.crt "voicebridge test CA"
gen_ca other-ca.key other-ca.crt "voicebridge unrelated CA"
gen_key server.key
openssl req -new -key server.key -subj "/CN=$host" -out server.csr
cat >server.ext <<EXT
subjectAltName=DNS:$host,IP:127.0.0.1
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
EXT
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -sha256 \
  -extfile server.ext -out server.crt
exec 2>&3
rm -f server.csr server.ext ca.srl openssl.log

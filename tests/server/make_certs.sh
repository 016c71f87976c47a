#!/usr/bin/env bash
# Creates the TLS material of the network tests in DIR (test-only keys, never used elsewhere):
#   ca.pem/ca.key                 test CA
#   server.pem/server.key         localhost + IP 127.0.0.1, signed by the CA
#   wronghost.pem/wronghost.key   wrong.example, signed by the CA
#   expired.pem/expired.key       localhost + 127.0.0.1, signed by the CA, notAfter in 2020
#   other-ca.pem/other-ca.key     an unrelated CA (for the untrusted-CA test)
# Idempotent: returns at once when every file exists. EC P-256 keys, so it takes well under a second.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$1
mkdir -p "$dir"
cd "$dir"

outputs=(ca.pem ca.key server.pem server.key wronghost.pem wronghost.key expired.pem expired.key
         other-ca.pem other-ca.key)
all_present=1
for f in "${outputs[@]}"; do [[ -s $f ]] || all_present=0; done
[[ $all_present == 1 ]] && exit 0

# Build in a scratch folder and move the results in at the end, so a concurrent or interrupted
# run never leaves a half-written set behind.
work=$(mktemp -d "$dir/.make_certs.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

# A config of our own so the result does not depend on the system openssl.cnf.
cat > openssl.cnf <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[wronghost_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
# `openssl ca` is the OpenSSL 3.0 way to set an arbitrary (past) validity period.
[ca]
default_ca = test_ca
[test_ca]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[policy_any]
commonName = supplied
CNF
export OPENSSL_CONF=$work/openssl.cnf

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

new_ca() {  # name, subject
  new_key "$1.key"
  openssl req -x509 -new -key "$1.key" -sha256 -days 3650 -subj "$2" \
    -config openssl.cnf -extensions ca_ext -out "$1.pem"
}

new_leaf() {  # name, CN, extension section, then extra `openssl x509 -req` arguments
  local name=$1 cn=$2 ext=$3
  shift 3
  new_key "$name.key"
  openssl req -new -key "$name.key" -subj "/CN=$cn" -config openssl.cnf -out "$name.csr"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 \
    -extfile openssl.cnf -extensions "$ext" -out "$name.pem" "$@" 2>/dev/null
}

new_ca ca "/CN=dagent test CA"
new_ca other-ca "/CN=dagent unrelated test CA"
new_leaf server localhost server_ext -days 825
new_leaf wronghost wrong.example wronghost_ext -days 825

new_key expired.key
openssl req -new -key expired.key -subj "/CN=localhost" -config openssl.cnf -out expired.csr
: > index.txt
echo 1000 > serial
openssl ca -batch -config openssl.cnf -cert ca.pem -keyfile ca.key -extensions server_ext \
  -startdate 20200101000000Z -enddate 20200102000000Z -notext -in expired.csr -out expired.pem \
  2>/dev/null

chmod 600 ./*.key
mv -f "${outputs[@]}" "$dir/"

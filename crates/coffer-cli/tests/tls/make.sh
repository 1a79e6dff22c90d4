#!/bin/sh
# Regenerates the test PKI the transport tests use (run once; the outputs are
# committed, valid for 100 years). Test-only keys: never use them anywhere else.
set -eu
cd "$(dirname "$0")"
days=36500
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
ec ca.key
openssl req -x509 -new -key ca.key -subj "/CN=Coffer test CA" -days $days -out ca.pem \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
leaf() { # name subject extensions
  ec "$1.key"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days $days \
    -extfile "$1.ext" -out "$1.pem"
  rm "$1.csr" "$1.ext"
}
server_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost'
client_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth'
leaf server "/CN=coffer test server" "$server_ext"
leaf server2 "/CN=coffer test server, renewed" "$server_ext"
leaf client-admin "/CN=coffer:admin" "$client_ext"
leaf client-unmapped "/CN=someone" "$client_ext"
rm -f ca.srl ca.key
chmod 600 ./*.key

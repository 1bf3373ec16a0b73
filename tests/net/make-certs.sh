#!/usr/bin/env bash
# Makes the test PKI with GnuTLS's certtool, in QEMU's tls-creds-x509 layout:
#   OUT/<set>/{ca.pem,cert.pem,key.pem}
# sets: server, client (signed by the test CA; the server's names are
# dst.ufio.test and DST_IP), other-server, other-client (another CA),
# expired-client, expired-server (validity in 2020), wrongname-server (names
# wrong.ufio.test only).
# usage: make-certs.sh OUT DST_IP
set -euo pipefail
out=$1 ip=$2
mkdir -p "$out/pki"
cd "$out/pki"
key() { certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 --outfile "$1" 2>/dev/null; }
ca() { # name
    key "$1-ca.key"
    printf 'cn = "%s"\nca\ncert_signing_key\nexpiration_days = 3\n' "$1" >"$1-ca.tmpl"
    certtool --generate-self-signed --load-privkey "$1-ca.key" --template "$1-ca.tmpl" --outfile "$1-ca.pem" 2>/dev/null
}
leaf() { # set ca cn dates-lines extra-lines
    local set=$1 caname=$2 cn=$3 dates=$4 extra=$5
    key "$set.key"
    printf 'cn = "%s"\n%b\n%b\ntls_www_server\ntls_www_client\nsigning_key\nencryption_key\n' \
        "$cn" "$dates" "$extra" >"$set.tmpl"
    certtool --generate-certificate --load-privkey "$set.key" --load-ca-certificate "$caname-ca.pem" \
        --load-ca-privkey "$caname-ca.key" --template "$set.tmpl" --outfile "$set.pem" 2>/dev/null
    mkdir -p "$out/$set"
    cp "$set.key" "$out/$set/key.pem"
    cp "$set.pem" "$out/$set/cert.pem"
    # each side trusts the test CA only
    cp ufio-test-ca-ca.pem "$out/$set/ca.pem"
}
ca ufio-test-ca
ca ufio-other-ca
valid='expiration_days = 2'
old='activation_date = "2020-01-01 00:00:00"\nexpiration_date = "2020-06-01 00:00:00"'
leaf server ufio-test-ca dst.ufio.test "$valid" "dns_name = \"dst.ufio.test\"\nip_address = \"$ip\""
leaf client ufio-test-ca src.ufio.test "$valid" 'dns_name = "src.ufio.test"'
leaf other-server ufio-other-ca dst.ufio.test "$valid" "dns_name = \"dst.ufio.test\"\nip_address = \"$ip\""
leaf other-client ufio-other-ca src.ufio.test "$valid" 'dns_name = "src.ufio.test"'
leaf expired-client ufio-test-ca src.ufio.test "$old" 'dns_name = "src.ufio.test"'
leaf expired-server ufio-test-ca dst.ufio.test "$old" "dns_name = \"dst.ufio.test\"\nip_address = \"$ip\""
leaf wrongname-server ufio-test-ca wrong.ufio.test "$valid" 'dns_name = "wrong.ufio.test"'

#!/bin/sh
# Makes what a Surefoot deployment needs to run with TLS and credentials, into DIR
# (default deploy/secrets, which compose.yaml mounts):
#   ca.crt ca.key          a CA of your own; ca.key signs the rest: keep it off the servers
#   server.crt server.key  the control plane's certificate, for the names in SUREFOOT_SERVER_NAMES
#   admin.token            the first admin credential (every namespace); give it to yourself
#   worker.token           a worker credential (namespace default, role worker)
#   worker.env             SUREFOOT_TOKEN=<worker.token>, for compose's env_file
#   auth.yaml              the hashed tokens for `surefoot server --auth-file`
# Needs only openssl and a POSIX shell. Existing files are kept, so running it again adds what
# is missing and never replaces a credential you have handed out.
#
#   deploy/make-secrets.sh [DIR]
#   SUREFOOT_SERVER_NAMES="DNS:surefoot.example.com,IP:10.0.0.5" deploy/make-secrets.sh
set -eu

DIR=${1:-"$(dirname "$0")/secrets"}
# Compose service names, the Kubernetes Service in the default namespace, and this machine.
NAMES=${SUREFOOT_SERVER_NAMES:-"DNS:controlplane-a,DNS:controlplane-b,DNS:surefoot,DNS:surefoot.default.svc,DNS:surefoot.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1"}
EC="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

mkdir -p "$DIR"
chmod 700 "$DIR"   # only you enter it; the files inside are readable so the image's user can be
cd "$DIR"
umask 022

if [ ! -f ca.crt ]; then
    # shellcheck disable=SC2086
    openssl req -x509 $EC -keyout ca.key -out ca.crt -days 3650 -subj "/CN=Surefoot CA" 2>/dev/null
    chmod 600 ca.key
    echo "made ca.crt (and ca.key: keep it safe, off the servers)"
fi

if [ ! -f server.crt ]; then
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$NAMES" > server.ext
    # shellcheck disable=SC2086
    openssl req -new $EC -keyout server.key -out server.csr -subj "/CN=surefoot" 2>/dev/null
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
        -extfile server.ext -out server.crt 2>/dev/null
    rm -f server.csr server.ext
    echo "made server.crt for $NAMES"
fi

token() {
    # 32 random bytes; the prefix tells what it is when it shows up in a paste.
    printf 'sft_%s' "$(openssl rand -hex 32)"
}

hash_of() {
    # What `surefoot credentials hash` prints: sha256 of the token as sent.
    printf 'sha256:%s' "$(printf '%s' "$1" | openssl dgst -sha256 -r | cut -d' ' -f1)"
}

if [ ! -f admin.token ]; then
    token > admin.token
    chmod 600 admin.token
    echo "made admin.token"
fi
if [ ! -f worker.token ]; then
    token > worker.token
    chmod 600 worker.token
    echo "made worker.token"
fi
printf 'SUREFOOT_TOKEN=%s\n' "$(cat worker.token)" > worker.env

if [ ! -f auth.yaml ]; then
    cat > auth.yaml <<EOF
# Credentials of the control plane: sha256 of each token, never the token itself.
# Add one per person and worker (\`surefoot credentials hash\` prints the key), or make them
# through the API with \`surefoot credentials create\` once the server runs.
tokens:
  "$(hash_of "$(cat admin.token)")":
    principal: admin
    namespaces: {"*": [admin]}
  "$(hash_of "$(cat worker.token)")":
    principal: worker-orders
    namespaces: {default: [worker]}
EOF
    echo "made auth.yaml"
fi
# The server key, the auth file and the worker's token are read inside containers by the
# image's user (uid 10001): readable files, in a directory only you can enter.
chmod 644 server.key auth.yaml worker.env

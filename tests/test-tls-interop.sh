#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# TLS interop of conduit-cat (and so of libconduit's TLS backend) with real
# peers: openssl s_server / s_client over TCP and Unix sockets, socat
# OPENSSL-LISTEN / OPENSSL, mTLS, verification failures, --insecure, --pin
# and the -v handshake trace (TAP).
#
# Environment (set by tests/meson.build): CONDUIT_CAT, the binary;
# CONDUIT_TESTDIR. CONDUIT_TEST_VALGRIND=1 runs every conduit-cat under
# valgrind memcheck (definite and indirect leaks are errors, exit status 99).
#
# A throwaway CA and its certificates are generated with the openssl CLI
# into the temporary directory at run time; no key is ever committed.
#
# Completion is proven by ordering, never by timing. openssl s_server and
# s_client know no half-close: s_server ends the connection (close_notify,
# then close) when its stdin reaches EOF or the client's close_notify
# arrives, and s_client -quiet ignores its stdin's EOF and ends when the
# server's close_notify arrives. So the side that closes first does so only
# once it has received everything (its stdin is held open until then).
# socat does half-close: there the tests of test-cat.sh apply (a reply that
# can only exist after the peer saw conduit-cat's EOF; data that conduit-cat's
# stdin produces only after conduit-cat passed the peer's EOF on). Every wait
# is bounded, every background process is killed on exit and everything
# lives in one temporary directory.
set -u

CAT_BIN=${CONDUIT_CAT:?CONDUIT_CAT must name the conduit-cat binary}
TESTDIR=${CONDUIT_TESTDIR:-$(dirname "$0")}
# shellcheck source=tests/tap-lib.sh
. "$(dirname "$0")/tap-lib.sh" || exit 1

conduit_cat_command "$CAT_BIN" 60 # TO: seconds any one step may take
tap_tmpdir "${TMPDIR:-/tmp}/conduit-tls-test.XXXXXX"
export TMP # for the bash -c pipelines
# openssl s_server -unix fails for a socket path of 32 bytes or more
# (OpenSSL 3.0: "addr_strings: system lib"), so its sockets live in a short
# directory of their own.
SDIR=$(mktemp -d /tmp/cts.XXXXXX) || exit 1
CLEANUP_DIRS+=("$SDIR")
PKI=$TMP/pki
tap_plan 39
make_test_data

# ---- helpers --------------------------------------------------------------------

# Bounded waits that also give up once the test is over ($D/stop exists,
# or $D is gone), so that a helper feeding some stdin never outlives its
# test for long (it would hold the TAP output open).
until_file() { # file
        local i
        for ((i = 0; i < TO * 10; i++)); do
                [ -e "$1" ] && return 0
                [ -e "$D/stop" ] || [ ! -d "$D" ] && return 1
                sleep 0.1
        done
        return 1
}
export -f until_file
until_size() { # file bytes
        local i size
        for ((i = 0; i < TO * 10; i++)); do
                size=$(stat -c %s "$1" 2>/dev/null || echo 0)
                [ "$size" -ge "$2" ] && return 0
                [ -e "$D/stop" ] || [ ! -d "$D" ] && return 1
                sleep 0.1
        done
        return 1
}

# conduit-cat (arguments $@) between two pipes, as bash -c runs it (an
# outer timeout(1) then holds none of the pipes): its stdout goes to a
# consumer that touches "marker" once it read EOF. IN=late: its stdin
# produces f1 only after that; IN=hold: its stdin sends f1 at once and
# stays open until then. The exit status is conduit-cat's.
# shellcheck disable=SC2016 # expanded by the bash -c that runs it
PIPED='case $IN in
        late) until_file "$D/marker" && cat "$TMP/f1" ;;
        *) cat "$TMP/f1" && until_file "$D/marker" ;;
        esac | "$@" 2>"$D/cat.err" | { cat >"$D/out"; touch "$D/marker"; }
        exit "${PIPESTATUS[1]}"'

# A stdin: file $1, then held open until the command $2... returns.
feed() {
        local file=$1
        shift
        cat "$file"
        "$@"
}

port_of() { # a bound URI, query options and all -> its TCP port
        local u=${1%%\?*}
        echo "${u##*:}"
}

same() { # what, got, expected
        cmp -s "$2" "$3" && return 0
        why "$1: $(wc -c <"$2" 2>/dev/null || echo 0) bytes that differ from the $(wc -c <"$3") bytes sent"
        return 1
}

have_openssl=false
command -v openssl >/dev/null && have_openssl=true

# ---- the throwaway PKI ----------------------------------------------------------

# ca: the test CA. server: localhost, 127.0.0.1 and ::1. client: a client
# certificate. wrong: a server certificate for another host name, by the
# same CA. All keys are ECDSA P-256 and live two days.
gen_key() {
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
}
gen_leaf() { # name subject extensions...
        local name=$1 subj=$2
        shift 2
        gen_key "$PKI/$name.key" &&
                openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" &&
                printf '%s\n' basicConstraints=critical,CA:FALSE subjectKeyIdentifier=hash \
                        authorityKeyIdentifier=keyid "$@" >"$PKI/$name.ext" &&
                openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" \
                        -CAcreateserial -days 2 -extfile "$PKI/$name.ext" -out "$PKI/$name.pem"
}
gen_pki() {
        mkdir -p "$PKI" &&
                gen_key "$PKI/ca.key" &&
                openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=conduit test CA" -days 2 \
                        -addext basicConstraints=critical,CA:TRUE \
                        -addext keyUsage=critical,keyCertSign,cRLSign -out "$PKI/ca.pem" &&
                gen_leaf server /CN=localhost subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1 \
                        extendedKeyUsage=serverAuth &&
                gen_leaf client "/CN=conduit test client" extendedKeyUsage=clientAuth &&
                gen_leaf wrong /CN=wrong.example subjectAltName=DNS:wrong.example \
                        extendedKeyUsage=serverAuth
}

# The pin of a certificate: sha256 of its SubjectPublicKeyInfo, base64.
pin_of() {
        openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform der |
                openssl dgst -sha256 -binary | base64
}

if $have_openssl; then
        if ! gen_pki >"$TMP/pki.log" 2>&1; then
                echo "Bail out! cannot generate the test certificates with openssl"
                diag "$TMP/pki.log"
                exit 1
        fi
fi

CA=$PKI/ca.pem
SRV_OPTS="cert=$PKI/server.pem&key=$PKI/server.key"

# ---- openssl s_server: conduit-cat connects ---------------------------------------

# Starts openssl s_server for one client on transport $1 (tcp4, tcp6,
# unix) with certificate $2 (server, wrong) and the s_server arguments
# $4...; its stdout goes to $D/recv. Its stdin sends f2, then stays open
# until $3 says: "stop" (the test is over: the client closes first) or
# "recv" (it received 1 MiB: its stdin's EOF then makes it close first).
# Sets PORT or SOCK and SRV_PID.
start_s_server() {
        local tr=$1 cert=$2 hold=$3 addr wait_args
        shift 3
        case $tr in
        tcp4)
                PORT=$(free_port 4) || return 1
                addr=(-accept "127.0.0.1:$PORT")
                wait_args=(tcp "$PORT")
                ;;
        tcp6)
                PORT=$(free_port 6) || return 1
                addr=(-accept "[::1]:$PORT")
                wait_args=(tcp "$PORT")
                ;;
        unix)
                SOCK=$SDIR/$N.sock
                addr=(-unix "$SOCK")
                wait_args=(unix "$SOCK")
                ;;
        esac
        case $hold in
        stop) hold=(until_file "$D/stop") ;;
        recv) hold=(until_size "$D/recv" "$MIB") ;;
        esac
        timeout "$TO" openssl s_server -quiet -naccept 1 "${addr[@]}" \
                -cert "$PKI/$cert.pem" -key "$PKI/$cert.key" "$@" \
                < <(feed "$TMP/f2" "${hold[@]}") >"$D/recv" 2>"$D/s_server.err" &
        SRV_PID=$!
        BG+=("$SRV_PID")
        wait_listening "${wait_args[@]}" || {
                why "s_server did not start listening"
                return 1
        }
}

# conduit-cat (args: flags and URI) sends f1 and holds its stdin open until
# it received all of f2; then its close_notify ends the connection and
# s_server answers with its own.
cat_to_s_server() {
        local rc
        # shellcheck disable=SC2094 # until_size only looks at the size of out
        timeout "$TO" "${CAT[@]}" -v "$@" < <(feed "$TMP/f1" until_size "$D/out" "$MIB") \
                >"$D/out" 2>"$D/cat.err"
        rc=$?
        [ "$rc" = 0 ] || { why "conduit-cat exited with $rc"; return 1; }
        wait_pid "$SRV_PID"
        rc=$?
        [ "$rc" != 124 ] || { why "s_server did not end"; return 1; }
        same "conduit-cat's stdout" "$D/out" "$TMP/f2" || return 1
        same "what s_server received" "$D/recv" "$TMP/f1" || return 1
}

# conduit-cat's own TLS line of -v ("conduit-cat: TLS with URI: VERSION,
# cipher CIPHER, ALPN ..., peer certificate SUBJECT") matches the extended
# regex $1 (not the library's trace, which says much the same).
tls_trace_has() { # regex what
        grep '^conduit-cat: TLS with ' "$D/cat.err" | grep -Eq "$1" ||
                { why "-v did not show $2 ($1)"; return 1; }
}

# ... with the version $1 and the cipher agreed.
has_tls_trace() { # version-regex
        tls_trace_has ": $1, " "the TLS version" || return 1
        tls_trace_has 'cipher (TLS_AES_(128|256)_GCM_SHA(256|384)|TLS_CHACHA20_POLY1305_SHA256|ECDHE-ECDSA-[A-Z0-9-]+),' \
                "the cipher"
}

s_server_tcp() { # host to connect to: localhost (name + SNI), 127.0.0.1, [::1]
        local tr=tcp4
        [ "$1" = "[::1]" ] && tr=tcp6
        start_s_server "$tr" server stop || return 1
        cat_to_s_server --cafile "$CA" "tls+tcp://$1:$PORT" || return 1
        has_tls_trace 'TLSv1\.3'
}

s_server_unix() {
        start_s_server unix server stop || return 1
        cat_to_s_server --cafile "$CA" "tls+unix://$SOCK?servername=localhost"
}

# URI options alone, no flags.
s_server_unix_uri_options() {
        start_s_server unix server stop || return 1
        cat_to_s_server "tls+unix://$SOCK?servername=localhost&cafile=$CA"
}

# s_server closes first, once it has everything: conduit-cat passes its
# close_notify on as EOF of stdout while its own stdin is still open, and
# only then does that stdin end (after the consumer saw EOF).
s_server_closes_first() {
        local rc
        start_s_server tcp4 server recv || return 1
        IN=hold timeout "$TO" bash -c "$PIPED" _ "${CAT[@]}" -v --cafile "$CA" \
                "tls+tcp://localhost:$PORT"
        rc=$?
        [ "$rc" = 0 ] || { why "conduit-cat exited with $rc"; return 1; }
        until_file "$D/marker" || { why "conduit-cat's stdout never reached EOF"; return 1; }
        wait_pid "$SRV_PID"
        [ "$?" != 124 ] || { why "s_server did not end"; return 1; }
        same "conduit-cat's stdout" "$D/out" "$TMP/f2" || return 1
        same "what s_server received" "$D/recv" "$TMP/f1" || return 1
}

# s_server dies (SIGKILL) once everything was exchanged: its transport
# closes without close_notify, which conduit-cat reports as a truncated
# stream (exit 1) rather than a clean end of file.
s_server_truncates() {
        local rc pid child
        start_s_server tcp4 server stop || return 1
        IN=hold timeout "$TO" bash -c "$PIPED" _ "${CAT[@]}" -v --cafile "$CA" \
                "tls+tcp://localhost:$PORT" &
        pid=$!
        BG+=("$pid")
        if ! until_size "$D/recv" "$MIB" || ! until_size "$D/out" "$MIB"; then
                why "the data did not get through"
                return 1
        fi
        # the openssl process under timeout(1) (its stdin feeder is one too)
        child=$(pgrep -P "$SRV_PID" -x openssl) || { why "no s_server process"; return 1; }
        kill -KILL "$child"
        { wait "$SRV_PID"; } 2>/dev/null # no "Killed" job report on stderr
        wait_pid "$pid"
        rc=$?
        [ "$rc" = 1 ] || { why "conduit-cat exited with $rc, expected 1"; return 1; }
        grep -Eiq 'truncat|close_notify' "$D/cat.err" ||
                { why "the message does not say the stream was truncated"; return 1; }
        same "conduit-cat's stdout" "$D/out" "$TMP/f2" || return 1
        same "what s_server received" "$D/recv" "$TMP/f1" || return 1
}

s_server_mtls() { # transport
        start_s_server "$1" server stop -Verify 1 -CAfile "$CA" || return 1
        local uri="tls+tcp://localhost:$PORT"
        [ "$1" = unix ] && uri="tls+unix://$SOCK?servername=localhost"
        cat_to_s_server --cafile "$CA" --cert "$PKI/client.pem" --key "$PKI/client.key" "$uri"
}

# Without a client certificate s_server -Verify 1 refuses the client: the
# server's alert ends conduit-cat with a TLS error (1), nothing is delivered.
s_server_mtls_no_cert() {
        local rc
        start_s_server tcp4 server stop -Verify 1 -CAfile "$CA" || return 1
        timeout "$TO" "${CAT[@]}" -v --cafile "$CA" "tls+tcp://localhost:$PORT" \
                <"$TMP/f1" >"$D/out" 2>"$D/cat.err"
        rc=$?
        [ "$rc" = 1 ] || { why "conduit-cat exited with $rc, expected 1 (TLS error)"; return 1; }
        [ ! -s "$D/recv" ] || { why "s_server received data from a client without a certificate"; return 1; }
        [ ! -s "$D/out" ] || { why "conduit-cat received data"; return 1; }
}

# TLS 1.2 only on the server: the handshake falls back, -v says so.
s_server_tls12() {
        start_s_server tcp4 server stop -tls1_2 || return 1
        cat_to_s_server --cafile "$CA" "tls+tcp://localhost:$PORT" || return 1
        has_tls_trace 'TLSv1\.2'
}

# --min-tls 1.3 against a TLS 1.2 server: a protocol error, exit 1.
s_server_min_tls() {
        local rc
        start_s_server tcp4 server stop -tls1_2 || return 1
        timeout "$TO" "${CAT[@]}" --min-tls 1.3 --cafile "$CA" "tls+tcp://localhost:$PORT" \
                <"$TMP/f1" >"$D/out" 2>"$D/cat.err"
        rc=$?
        [ "$rc" = 1 ] || { why "conduit-cat exited with $rc, expected 1 (TLS error)"; return 1; }
        [ ! -s "$D/recv" ] || { why "s_server received data"; return 1; }
        [ -s "$D/cat.err" ] || { why "no message on stderr"; return 1; }
}

# The https service scheme, ALPN from --alpn, shown by -v.
s_server_https_alpn() {
        start_s_server tcp4 server stop -alpn http/1.1 || return 1
        cat_to_s_server --cafile "$CA" --alpn h2,http/1.1 "https://localhost:$PORT" || return 1
        tls_trace_has 'ALPN http/1\.1,' "the ALPN protocol" || return 1
        tls_trace_has 'peer certificate CN=localhost$' "the peer's subject"
}

# ---- openssl s_client: conduit-cat listens -----------------------------------------

# conduit-cat -v [flags] -l URI (arguments $@) sends f2 and holds its stdin
# open until it received all of f1. Sets CAT_PID and BOUND (the bound URI).
start_cat_listener() {
        # shellcheck disable=SC2094 # until_size only looks at the size of out
        timeout "$TO" "${CAT[@]}" -v "$@" < <(feed "$TMP/f2" until_size "$D/out" "$MIB") \
                >"$D/out" 2>"$D/cat.err" &
        CAT_PID=$!
        BG+=("$CAT_PID")
        BOUND=$(listen_uri "$D/cat.err" "$CAT_PID") || { why "no 'listening on' line"; return 1; }
}

# Runs s_client -quiet (verifying the server as localhost against the CA,
# arguments S_CLIENT_ARGS) towards the target the function $1 prints, with
# f1 as stdin and stdout to file $2. Exit status of s_client.
run_s_client() {
        local target
        read -r -a target <<<"$($1)"
        timeout "$TO" openssl s_client -quiet "${target[@]}" -CAfile "$CA" -verify_return_error \
                -servername localhost -verify_hostname localhost "${S_CLIENT_ARGS[@]}" \
                <"$TMP/f1" >"$2" 2>>"$D/s_client.err"
}

# One s_client exchange with the listener started by start_cat_listener:
# s_client sends f1 and receives f2 (-quiet ignores its own stdin's EOF);
# once conduit-cat has f1 its stdin ends, its close_notify ends s_client,
# which answers with its own, and both exit 0.
s_client_exchange() { # target function
        local rc
        run_s_client "$1" "$D/recv"
        rc=$?
        [ "$rc" = 0 ] || { why "s_client exited with $rc"; return 1; }
        wait_pid "$CAT_PID"
        rc=$?
        [ "$rc" = 0 ] || { why "conduit-cat exited with $rc"; return 1; }
        same "what s_client received" "$D/recv" "$TMP/f2" || return 1
        same "conduit-cat's stdout" "$D/out" "$TMP/f1" || return 1
        has_tls_trace 'TLSv1\.3'
}

# conduit-cat listens with arguments $2...; s_client reaches it through
# the target function $1.
cat_listens_for_s_client() {
        local target_fn=$1
        shift
        start_cat_listener "$@" || return 1
        s_client_exchange "$target_fn"
}

target_tcp() { echo "-connect 127.0.0.1:$(port_of "$BOUND")"; }
target_unix() { echo "-unix $SDIR/$N-l.sock"; }

s_client_tcp() {
        S_CLIENT_ARGS=()
        cat_listens_for_s_client target_tcp -l "tls+tcp://127.0.0.1:0?$SRV_OPTS"
}

# The certificate from --cert/--key instead of URI options; --alpn on a
# listener selects among the client's protocols.
s_client_tcp_flags() {
        S_CLIENT_ARGS=(-alpn "foo,h2")
        cat_listens_for_s_client target_tcp --cert "$PKI/server.pem" --key "$PKI/server.key" \
                --alpn h2,http/1.1 -l "tls+tcp://127.0.0.1:0" || return 1
        tls_trace_has 'ALPN h2,' "the ALPN protocol selected"
}

s_client_unix() {
        S_CLIENT_ARGS=()
        cat_listens_for_s_client target_unix -l "tls+unix://$SDIR/$N-l.sock?$SRV_OPTS"
}

# mTLS: the listener's cafile requires a client certificate; -v names it.
s_client_mtls() { # tcp or unix
        S_CLIENT_ARGS=(-cert "$PKI/client.pem" -key "$PKI/client.key")
        local uri="tls+tcp://127.0.0.1:0?$SRV_OPTS&cafile=$CA"
        [ "$1" = unix ] && uri="tls+unix://$SDIR/$N-l.sock?$SRV_OPTS&cafile=$CA"
        cat_listens_for_s_client "target_$1" -l "$uri" || return 1
        tls_trace_has 'peer certificate CN=conduit test client$' "the client's subject"
}

# mTLS with --cafile as the listener's default.
s_client_mtls_flag() {
        S_CLIENT_ARGS=(-cert "$PKI/client.pem" -key "$PKI/client.key")
        cat_listens_for_s_client target_tcp --cafile "$CA" -l "tls+tcp://127.0.0.1:0?$SRV_OPTS"
}

# A client without a certificate is refused: it gets no data and what it
# sent is never delivered; the listener (one client, no -k) goes on waiting
# for a client that completes its handshake, and serves the next one, which
# has a certificate. -v traces the failed handshake.
s_client_mtls_no_cert() {
        local rc
        start_cat_listener -l "tls+tcp://127.0.0.1:0?$SRV_OPTS&cafile=$CA" || return 1
        S_CLIENT_ARGS=()
        run_s_client target_tcp "$D/recv0"
        rc=$?
        [ "$rc" != 124 ] || { why "s_client without a certificate hung"; return 1; }
        [ ! -s "$D/recv0" ] || { why "s_client without a certificate received data"; return 1; }
        kill -0 "$CAT_PID" 2>/dev/null ||
                { why "conduit-cat did not wait for the next client"; return 1; }
        S_CLIENT_ARGS=(-cert "$PKI/client.pem" -key "$PKI/client.key")
        s_client_exchange target_tcp || return 1
        grep -Eiq 'handshake.*fail|fail.*handshake' "$D/cat.err" ||
                { why "-v did not trace the failed handshake"; return 1; }
}

# ---- socat OPENSSL-LISTEN / OPENSSL, verification on both sides ----------------

# What socat runs: data and late send f2 and record what comes back in
# "recv"; reply answers with the sha256 of everything it received, which it
# can only compute after conduit-cat's EOF (its close_notify). (As
# tap-lib.sh's socat_side and check_result, but f2 is read from TMP and a
# difference is reported by same.)
socat_tls_side() {
        case $1 in
        reply) echo "SYSTEM:sha256sum" ;;
        *) echo "OPEN:$TMP/f2,rdonly!!CREATE:$D/recv" ;;
        esac
}

check_tls_result() { # kind
        case $1 in
        reply)
                cmp -s "$D/out" "$TMP/f1.sha256" || {
                        why "conduit-cat printed '$(head -c 100 "$D/out")', expected the sha256 of what it sent"
                        return 1
                }
                ;;
        *)
                same "conduit-cat's stdout" "$D/out" "$TMP/f2" || return 1
                same "what socat received" "$D/recv" "$TMP/f1" || return 1
                ;;
        esac
}

# Runs conduit-cat with arguments $2... the way kind $1 needs; exit status.
# late: its stdin produces f1 only once conduit-cat has closed its stdout
# (the consumer touches "marker" after it read EOF).
run_cat_kind() {
        local kind=$1
        shift
        case $kind in
        late)
                IN=late timeout "$TO" bash -c "$PIPED" _ "${CAT[@]}" -v "$@"
                local rc=$?
                until_file "$D/marker" || why "conduit-cat's stdout never reached EOF"
                return $rc
                ;;
        *) timeout "$TO" "${CAT[@]}" -v "$@" <"$TMP/f1" >"$D/out" 2>"$D/cat.err" ;;
        esac
}

# conduit-cat connects (client certificate, CA); socat listens and requires
# a client certificate from the CA (verify=1).
socat_server() { # kind
        local kind=$1 port rc pid
        port=$(free_port 4) || return 1
        timeout "$TO" socat -t 30 \
                "OPENSSL-LISTEN:$port,bind=127.0.0.1,reuseaddr,cert=$PKI/server.pem,key=$PKI/server.key,cafile=$CA,verify=1" \
                "$(socat_tls_side "$kind")" 2>"$D/socat.err" &
        pid=$!
        BG+=("$pid")
        wait_listening tcp "$port" || { why "socat did not start listening"; return 1; }
        run_cat_kind "$kind" --cafile "$CA" --cert "$PKI/client.pem" --key "$PKI/client.key" \
                "tls+tcp://localhost:$port"
        rc=$?
        [ "$rc" = 0 ] || { why "conduit-cat exited with $rc"; return 1; }
        wait_pid "$pid"
        rc=$?
        [ "$rc" = 0 ] || { why "socat exited with $rc"; return 1; }
        check_tls_result "$kind"
}

# conduit-cat listens (certificate, and cafile: mTLS); socat connects with
# its client certificate and checks the server against the CA and the
# address (verify=1).
socat_client() { # kind
        local kind=$1 rc pid uri
        case $kind in
        late)
                IN=late timeout "$TO" bash -c "$PIPED" _ "${CAT[@]}" -v \
                        -l "tls+tcp://127.0.0.1:0?$SRV_OPTS&cafile=$CA" &
                ;;
        *)
                timeout "$TO" "${CAT[@]}" -v -l "tls+tcp://127.0.0.1:0?$SRV_OPTS&cafile=$CA" \
                        <"$TMP/f1" >"$D/out" 2>"$D/cat.err" &
                ;;
        esac
        pid=$!
        BG+=("$pid")
        uri=$(listen_uri "$D/cat.err" "$pid") || { why "no 'listening on' line"; return 1; }
        timeout "$TO" socat -t 30 \
                "OPENSSL:127.0.0.1:$(port_of "$uri"),cafile=$CA,verify=1,cert=$PKI/client.pem,key=$PKI/client.key" \
                "$(socat_tls_side "$kind")" 2>"$D/socat.err"
        rc=$?
        [ "$rc" = 0 ] || { why "socat exited with $rc"; return 1; }
        wait_pid "$pid"
        rc=$?
        [ "$rc" = 0 ] || { why "conduit-cat exited with $rc"; return 1; }
        if [ "$kind" = late ]; then
                until_file "$D/marker" || { why "conduit-cat's stdout never reached EOF"; return 1; }
        fi
        check_tls_result "$kind"
}

describe() {
        case $1 in
        data) echo "1 MiB both ways" ;;
        reply) echo "half-close: its close_notify reaches socat, the reply still arrives" ;;
        late) echo "half-close: socat's close_notify closes its stdout, its stdin still flows" ;;
        esac
}

# ---- verification --------------------------------------------------------------------

# conduit-cat with arguments $2... must exit with $1 having delivered
# nothing, and say why on stderr.
cat_fails() {
        local want=$1 rc
        shift
        timeout "$TO" "${CAT[@]}" "$@" <"$TMP/f1" >"$D/out" 2>"$D/cat.err"
        rc=$?
        [ "$rc" = "$want" ] || { why "conduit-cat exited with $rc, expected $want"; return 1; }
        [ -s "$D/cat.err" ] || { why "no message on stderr"; return 1; }
        [ ! -s "$D/recv" ] || { why "the server received data"; return 1; }
}

err_names() { # extended regex, what
        grep -Eiq "$1" "$D/cat.err" || { why "the message does not name the reason ($2)"; return 1; }
}

verify_wrong_host() {
        start_s_server tcp4 wrong stop || return 1
        cat_fails 6 --cafile "$CA" "tls+tcp://localhost:$PORT" || return 1
        err_names 'host ?name mismatch|mismatch.*host|host.*(does not match|mismatch)' "host name mismatch"
}

# An IP literal is checked against the IP SANs: wrong.pem has none.
verify_wrong_ip() {
        start_s_server tcp4 wrong stop || return 1
        cat_fails 6 --cafile "$CA" "tls+tcp://127.0.0.1:$PORT" || return 1
        err_names 'ip ?address mismatch|mismatch' "IP address mismatch"
}

# No --cafile: the system store does not know the test CA.
verify_unknown_ca() {
        start_s_server tcp4 server stop || return 1
        cat_fails 6 "tls+tcp://localhost:$PORT" || return 1
        err_names 'local issuer|unknown ca|unable to get|self.signed|untrusted' "unknown CA"
}

verify_insecure() {
        start_s_server tcp4 wrong stop || return 1
        cat_to_s_server --insecure "tls+tcp://localhost:$PORT" || return 1
        grep -q '^conduit-cat: warning: .*not verified' "$D/cat.err" ||
                { why "no warning that verification is off"; return 1; }
        # the chain does not verify (unknown CA): -v says so
        tls_trace_has 'verify result [1-9][0-9]* \(not verified\)$' "the verification result"
}

# verify=0 in the URI: the same warning, naming the URI.
verify_uri_insecure() {
        start_s_server tcp4 wrong stop || return 1
        cat_to_s_server "tls+tcp://localhost:$PORT?verify=0" || return 1
        grep -q "^conduit-cat: warning: tls+tcp://localhost:$PORT?verify=0: verify=0: .*not verified" \
                "$D/cat.err" || { why "no warning that the URI turned verification off"; return 1; }
}

# A URI option wins over the flag: verify=1 in the URI undoes --insecure.
verify_uri_wins() {
        start_s_server tcp4 wrong stop || return 1
        cat_fails 6 --insecure --cafile "$CA" "tls+tcp://localhost:$PORT?verify=1"
}

# The right pin accepts the peer whatever its name.
verify_pin() {
        start_s_server tcp4 wrong stop || return 1
        cat_to_s_server --pin "sha256//$(pin_of "$PKI/wrong.pem")" "tls+tcp://localhost:$PORT"
}

# A wrong pin (another key's) rejects a peer that passes every other check.
verify_wrong_pin() {
        start_s_server tcp4 server stop || return 1
        cat_fails 6 --cafile "$CA" --pin "sha256//$(pin_of "$PKI/client.pem")" \
                "tls+tcp://localhost:$PORT" || return 1
        err_names 'pin' "pin mismatch"
}

# Over a Unix socket a pin stands for the missing host name.
verify_pin_unix() {
        start_s_server unix server stop || return 1
        cat_to_s_server --pin "sha256//$(pin_of "$PKI/server.pem")" "tls+unix://$SOCK"
}

# Over a Unix socket without servername, pin or verify=0: refused.
verify_unix_needs_name() {
        start_s_server unix server stop || return 1
        timeout "$TO" "${CAT[@]}" --cafile "$CA" "tls+unix://$SOCK" \
                <"$TMP/f1" >"$D/out" 2>"$D/cat.err"
        local rc=$?
        case $rc in
        0 | 124) why "conduit-cat exited with $rc"; return 1 ;;
        esac
        [ ! -s "$D/recv" ] || { why "the server received data"; return 1; }
        err_names 'servername' "servername required"
}

# ---- flags ------------------------------------------------------------------------------

bad_flags() {
        local rc args
        for args in "--min-tls 1.1" "--pin not-a-pin" "--alpn ,"; do
                # shellcheck disable=SC2086 # split on purpose
                timeout "$TO" "${CAT[@]}" $args tls+tcp://127.0.0.1:1 </dev/null >"$D/out" 2>"$D/cat.err"
                rc=$?
                [ "$rc" = 2 ] || { why "$args: exit status $rc, expected 2"; return 1; }
                grep -q "^conduit-cat: invalid ${args%% *} " "$D/cat.err" ||
                        { why "$args: $(head -n 1 "$D/cat.err")"; return 1; }
        done
}

help_tls() {
        local f
        timeout "$TO" "${CAT[@]}" --help >"$D/out" 2>"$D/cat.err" || { why "--help failed"; return 1; }
        for f in --cafile --capath --cert --key --servername --alpn --pin --min-tls --insecure; do
                grep -q -- "^ *$f" "$D/out" || { why "--help does not list $f"; return 1; }
        done
}

# conduit-cat -l -k URI1 tls+URI2: each client gets a connection of its
# own to the TLS server, and the second resumes the session of the first
# (one context serves the whole run): -v says ", resumed" for it only.
# s_server -www answers a GET and closes, one SSL_CTX for both clients.
relay_resumes() {
        local port pid uri i
        port=$(free_port 4) || return 1
        timeout "$TO" openssl s_server -quiet -naccept 2 -accept "127.0.0.1:$port" -www \
                -cert "$PKI/server.pem" -key "$PKI/server.key" </dev/null >"$D/recv" \
                2>"$D/s_server.err" &
        BG+=("$!")
        wait_listening tcp "$port" || { why "s_server did not start listening"; return 1; }
        timeout "$TO" "${CAT[@]}" -v -l -k --cafile "$CA" tcp://127.0.0.1:0 \
                "tls+tcp://localhost:$port" </dev/null >"$D/out" 2>"$D/cat.err" &
        pid=$!
        BG+=("$pid")
        uri=$(listen_uri "$D/cat.err" "$pid") || { why "no 'listening on' line"; return 1; }
        for i in 1 2; do
                printf 'GET / HTTP/1.0\r\n\r\n' |
                        timeout "$TO" socat -t 30 - "TCP4:127.0.0.1:${uri##*:}" >"$D/page$i" \
                                2>>"$D/socat.err" || { why "client $i: socat failed"; return 1; }
                grep -q '^HTTP/1.0 200 ok' "$D/page$i" ||
                        { why "client $i got no page: $(head -c 200 "$D/page$i")"; return 1; }
        done
        [ "$(grep -c '^conduit-cat: TLS with ' "$D/cat.err")" = 2 ] ||
                { why "expected two TLS handshake lines"; return 1; }
        grep '^conduit-cat: TLS with ' "$D/cat.err" | head -n 1 | grep -q ', resumed$' &&
                { why "the first connection cannot have resumed"; return 1; }
        grep '^conduit-cat: TLS with ' "$D/cat.err" | tail -n 1 | grep -q ', resumed$' ||
                { why "the second connection did not resume"; return 1; }
}

# ---- the plan --------------------------------------------------------------------------

# Runs test $2... named $1 when the tools it needs ($REQ: openssl, socat,
# ipv6) are there.
need() {
        local name=$1 r
        shift
        for r in $REQ; do
                case $r in
                openssl) $have_openssl || { skip "$name" "openssl not installed"; return; } ;;
                socat) $have_socat || { skip "$name" "socat not installed"; return; } ;;
                ipv6) $have_ipv6 || { skip "$name" "no IPv6 loopback"; return; } ;;
                esac
        done
        t "$name" "$@"
}

REQ="openssl"
need "s_server, tls+tcp://localhost (name, SNI): 1 MiB both ways, close_notify both ways, -v" \
        s_server_tcp localhost
need "s_server, tls+tcp://127.0.0.1 (IP SAN): 1 MiB both ways" s_server_tcp 127.0.0.1
REQ="openssl ipv6"
need "s_server, tls+tcp://[::1] (IPv6 SAN): 1 MiB both ways" s_server_tcp "[::1]"
REQ="openssl"
need "s_server closes first: its close_notify ends conduit-cat's stdout, stdin still open" \
        s_server_closes_first
need "s_server killed without close_notify: truncation reported, exit 1" s_server_truncates
need "s_server -Verify (mTLS), conduit-cat --cert/--key over TCP: 1 MiB both ways" \
        s_server_mtls tcp4
need "s_server -tls1_2: TLS 1.2, 1 MiB both ways, -v says TLSv1.2" s_server_tls12
need "s_server -alpn: https://localhost:PORT with --alpn, -v shows ALPN and subject" \
        s_server_https_alpn
need "s_server -Verify, conduit-cat without a certificate: refused, exit 1" s_server_mtls_no_cert
need "--min-tls 1.3 against a TLS 1.2 server: exit 1" s_server_min_tls
REQ="openssl"
need "s_server -unix, tls+unix://PATH?servername=localhost: 1 MiB both ways" s_server_unix
need "s_server -unix, servername and cafile as URI options only" s_server_unix_uri_options
need "s_server -unix -Verify (mTLS), conduit-cat --cert/--key" s_server_mtls unix

need "s_client -connect, -l tls+tcp://127.0.0.1:0?cert&key: 1 MiB both ways, -v" s_client_tcp
need "s_client -connect -alpn, -l with --cert/--key/--alpn flags" s_client_tcp_flags
need "s_client -unix, -l tls+unix://PATH?cert&key: 1 MiB both ways" s_client_unix
need "s_client -cert (mTLS), -l ...&cafile over TCP, -v shows the client subject" s_client_mtls tcp
need "s_client -cert (mTLS), -l ...&cafile over Unix" s_client_mtls unix
need "s_client -cert (mTLS), listener --cafile flag" s_client_mtls_flag
need "s_client without a certificate, mTLS listener: refused, the next client is served" \
        s_client_mtls_no_cert

REQ="openssl socat"
for kind in data reply late; do
        need "socat OPENSSL-LISTEN (verify=1, mTLS), conduit-cat client: $(describe $kind)" \
                socat_server "$kind"
done
for kind in data reply late; do
        need "socat OPENSSL (verify=1, mTLS), conduit-cat listener: $(describe $kind)" \
                socat_client "$kind"
done

need "-l -k relay to s_server: the second client's connection resumes the TLS session (-v)" \
        relay_resumes

REQ="openssl"
need "verify: wrong host name exits 6 and says why" verify_wrong_host
need "verify: IP literal not in the IP SANs exits 6" verify_wrong_ip
need "verify: on by default, unknown CA (system store) exits 6" verify_unknown_ca
need "verify: --insecure accepts the wrong host, with a warning" verify_insecure
need "verify: the URI's verify=1 wins over --insecure" verify_uri_wins
need "verify: verify=0 in a URI is warned about" verify_uri_insecure
need "pin: the right pin accepts the wrong-host certificate" verify_pin
need "pin: a wrong pin exits 6 and says so" verify_wrong_pin
REQ="openssl"
need "pin: tls+unix://PATH with only --pin" verify_pin_unix
need "tls+unix://PATH without servername, pin or verify=0 is refused" verify_unix_needs_name

REQ=""
need "bad TLS flag values are usage errors (exit 2) with the library's message" bad_flags
need "--help lists the TLS flags" help_tls

tap_finish

#!/usr/bin/env bash
# Check that the QEMU patches in this directory apply to the QEMU sources
# they target (patch -p1 --dry-run), and test the digest code of the patched
# tpm_emulator.c (see digest_test).
#
#   qemu-7.2-vtpm-ram-digest.patch      -> Debian 12's qemu source package
#                                          (the files it changes, with
#                                          Debian's patches cut down to them)
#                                          (apt-get source; when the system
#                                          has no deb-src entries, through a
#                                          private apt configuration under
#                                          $QEMU_SRC_CACHE/apt — /etc/apt is
#                                          never edited)
#   qemu-current-vtpm-ram-digest.patch  -> $QEMU_CURRENT_SRC, if given
#
# Environment:
#   QEMU_SRC_CACHE    where the Debian source is kept
#                     (default: $HOME/.cache/libvtpm-qemu-src)
#   QEMU_CURRENT_SRC  a checkout of current QEMU master (optional)
#   CHECK_DIGEST=0    skip the digest test of the patched code (ram-digest-test.c):
#                     the run then exits 77 (skipped), not 0
#
# Exit status: 0 if every checked patch applies and its digest code passes,
# 1 if one does not, 2 if the check itself broke, 77 (meson: skipped) with
# the reason on stderr if Debian's source cannot be had or the digest test
# could not run.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${QEMU_SRC_CACHE:-$HOME/.cache/libvtpm-qemu-src}
patch_72=$here/qemu-7.2-vtpm-ram-digest.patch
patch_cur=$here/qemu-current-vtpm-ram-digest.patch
# The files the patches change (7.2 layout, and current QEMU's, where
# softmmu/ is system/ and include/sysemu/ is include/system/); the digest
# code lives in the first two.
files=(backends/tpm/tpm_ioctl.h backends/tpm/tpm_emulator.c migration/migration.c softmmu/tpm.c
       include/sysemu/tpm.h include/sysemu/tpm_backend.h)
files_cur=(backends/tpm/tpm_ioctl.h backends/tpm/tpm_emulator.c migration/migration.c system/tpm.c
           include/system/tpm.h include/system/tpm_backend.h)
aptdir=$cache/apt
apt_private=()

log() { printf '%s\n' "$*" >&2; }
die() { log "check.sh: $*"; exit 2; }
skip() { log "# SKIP: $*"; exit 77; }

have_qemu_src() {
    # (no grep -q in a pipe: with pipefail, apt-cache's SIGPIPE would count)
    local out
    out=$(apt-cache "${apt_private[@]}" showsrc qemu 2>/dev/null) || return 1
    grep -qx 'Package: qemu' <<<"$out"
}

# Print deb-src stanzas mirroring the system's own Debian 'deb' entries
# (same URIs, suites, components and Signed-By), so that the source comes
# from the same mirror the binaries come from.
mirror_deb822() {
    # Copy each "Types: deb" stanza that names a bookworm suite, as deb-src.
    awk '
        function flush() {
            if (st != "" && types ~ /(^| )deb( |$)/ && suites ~ /bookworm/)
                printf "%s\n", st
            st = ""; types = ""; suites = ""
        }
        /^[ \t]*#/ { next }
        /^[ \t]*$/ { flush(); next }
        {
            line = $0
            if (tolower($1) == "types:") { types = $0; sub(/^[^:]*:[ \t]*/, "", types); line = "Types: deb-src" }
            if (tolower($1) == "suites:") { suites = $0 }
            st = st line "\n"
        }
        END { flush() }
    ' "$@"
}

mirror_oneline() {
    sed -n -E 's/^[[:space:]]*deb[[:space:]]+((\[[^]]*\][[:space:]]+)?[^[:space:]]+[[:space:]]+bookworm[^[:space:]]*[[:space:]].*)$/deb-src \1/p' "$@"
}

# No deb-src on the system: a private apt configuration in $aptdir whose
# source list mirrors the system's Debian 'deb' entries as deb-src, with its
# own package lists and cache. Sets apt_private (options for apt-get/apt-cache).
private_deb_src() {
    local deb822=() oneline=() out f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && deb822+=("$f")
    done
    [ -f /etc/apt/sources.list ] && oneline+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] && oneline+=("$f")
    done
    mkdir -p "$aptdir/sources.list.d" "$aptdir/lists/partial" "$aptdir/cache/archives/partial"
    : >"$aptdir/sources.list"
    rm -f "$aptdir/sources.list.d/"*
    if [ ${#deb822[@]} -gt 0 ] && out=$(mirror_deb822 "${deb822[@]}") && [ -n "$out" ]; then
        printf '%s\n' "$out" >"$aptdir/sources.list.d/deb-src.sources"
    else
        out=""
        [ ${#oneline[@]} -gt 0 ] && out=$(mirror_oneline "${oneline[@]}" | sort -u)
        [ -n "$out" ] || out='deb-src http://deb.debian.org/debian bookworm main'
        printf '%s\n' "$out" >"$aptdir/sources.list"
    fi
    apt_private=(-o "Dir::Etc::sourcelist=$aptdir/sources.list" -o "Dir::Etc::sourceparts=$aptdir/sources.list.d"
                 -o "Dir::State::Lists=$aptdir/lists" -o "Dir::Cache=$aptdir/cache")
    [ "$(id -u)" -eq 0 ] && apt_private+=(-o "APT::Sandbox::User=root")
    log "check.sh: no deb-src on this system: private apt configuration in $aptdir"
    apt-get "${apt_private[@]}" update -q >&2 ||
        skip "Debian's qemu source cannot be had: apt-get update with the private deb-src list failed"
}

# only_files FILE... <DIFF: the sections of a git-style unified diff
# ("diff --git" headers) that change one of FILE.
only_files() {
    awk -v FILES="$*" '
        BEGIN { n = split(FILES, f, " "); for (i = 1; i <= n; i++) want[f[i]] = 1 }
        /^diff / { keep = 0; hdr = $0; pending = 1; next }
        /^--- / && pending { old = $0; next }
        /^\+\+\+ / && pending {
            p = $2; sub(/^[^\/]*\//, "", p); keep = (p in want)
            if (keep) { print hdr; if (old != "") print old; print }
            hdr = ""; old = ""; pending = 0; next
        }
        keep { print }
    '
}

# copy_files DIR DEST FILE...: FILE (paths under DIR) into DEST, same paths.
copy_files() {
    local dir=$1 dest=$2 f
    shift 2
    for f in "$@"; do
        mkdir -p "$dest/$(dirname "$f")"
        cp "$dir/$f" "$dest/$f"
    done
}

# Download (once) Debian 12's qemu source package into $cache and leave
# an extracted tree of the files we patch (with Debian's own patches
# applied) in $cache/tree-<version>. Prints that directory.
prepare_debian_src() {
    mkdir -p "$cache"
    local dsc
    dsc=$(ls -1 "$cache"/qemu_7.2*.dsc 2>/dev/null | sort -V | tail -n1 || true)
    if [ -z "$dsc" ]; then
        if ! have_qemu_src; then
            private_deb_src
            have_qemu_src || skip "Debian's qemu source cannot be had: apt knows no source package 'qemu'"
        fi
        log "check.sh: downloading Debian's qemu source into $cache"
        (cd "$cache" && apt-get "${apt_private[@]}" source --download-only -q qemu >&2) ||
            skip "Debian's qemu source cannot be had: apt-get source --download-only qemu failed"
        dsc=$(ls -1 "$cache"/qemu_7.2*.dsc 2>/dev/null | sort -V | tail -n1 || true)
        [ -n "$dsc" ] || die "no qemu_7.2*.dsc in $cache after download (is this Debian 12?)"
    fi

    local ver tree
    ver=$(sed -n 's/^Version: //p' "$dsc" | head -n1)
    # Named by the number of files, so a tree of an older file list is not reused.
    tree=$cache/tree-${ver//:/_}-${#files[@]}files
    local f complete=1
    for f in "${files[@]}"; do [ -f "$tree/$f" ] || complete=0; done
    if [ ! -f "$tree/.complete" ] || [ "$complete" = 0 ]; then
        rm -rf "$tree" "$tree.tmp"
        mkdir -p "$tree.tmp"
        local orig debtar
        orig=$(ls -1 "$cache"/qemu_*.orig.tar.* 2>/dev/null | grep -v '\.asc$' | head -n1 || true)
        debtar=$(ls -1 "$cache"/qemu_*.debian.tar.* 2>/dev/null | head -n1 || true)
        [ -n "$orig" ] && [ -n "$debtar" ] || die "orig or debian tarball missing in $cache"
        # Only the two files we patch, not the whole 100+ MB tree.
        tar -xf "$orig" -C "$tree.tmp" --strip-components=1 --wildcards \
            "${files[@]/#/*/}" || die "cannot extract ${files[*]} from $orig"
        tar -xf "$debtar" -C "$tree.tmp" debian/patches ||
            die "cannot extract debian/patches from $debtar"
        # Apply Debian's patches (in series order), cut down to our files
        # (the stable updates v7.2.N.diff change migration/migration.c).
        local series=$tree.tmp/debian/patches/series p part
        if [ -f "$series" ]; then
            while read -r p _; do
                case $p in ''|'#'*) continue ;; esac
                local pf=$tree.tmp/debian/patches/$p
                [ -f "$pf" ] || continue
                part=$(only_files "${files[@]}" <"$pf")
                if [ -n "$part" ]; then
                    log "check.sh: applying Debian patch $p (to ${files[*]} only)"
                    patch -d "$tree.tmp" -p1 -s --forward --no-backup-if-mismatch <<<"$part" ||
                        die "Debian patch $p does not apply to the extracted files"
                fi
            done <"$series"
        fi
        printf '%s\n' "$ver" >"$tree.tmp/.complete"
        mv "$tree.tmp" "$tree"
    fi
    printf '%s\n' "$tree"
}

# The patched tpm_emulator.c cannot be compiled on its own (QEMU's headers
# need a configured build tree: config-host.h, QAPI and trace headers), so
# instead the new digest functions are cut out of the *patched* file and
# built, with the patched tpm_ioctl.h, into ram-digest-test.c, which stands
# in for the few QEMU APIs they use.  Its output (the bytes put on the
# control channel) is compared with an independent RFC 6962 implementation
# in Python.  Skipped (with a note) if gcc, GLib or python3 is missing.
#
# digest_test NAME DIR [QEMU_CURRENT]   (DIR: a patched tree)
digest_test() {
    local name=$1 dir=$2 variant=${3:-} tmp
    if [ "${CHECK_DIGEST:-1}" != 1 ]; then
        log "    ($name: digest test skipped: CHECK_DIGEST=${CHECK_DIGEST})"
        skipped+=("$name: digest test not run (CHECK_DIGEST=${CHECK_DIGEST})")
        return 0
    fi
    if ! command -v gcc >/dev/null || ! command -v python3 >/dev/null ||
       ! pkg-config --exists glib-2.0 2>/dev/null; then
        log "    ($name: digest test skipped: needs gcc, python3 and GLib headers)"
        skipped+=("$name: digest test not run (needs gcc, python3 and GLib headers)")
        return 0
    fi
    tmp=$(mktemp -d)
    cp "$dir/backends/tpm/tpm_ioctl.h" "$tmp/"
    awk '
        on { print
             if ($0 ~ /^static int tpm_emulator_send_ram_digest/) insend = 1
             if (insend && $0 ~ /^}$/) exit
             next }
        prev ~ /^\/\*$/ && $0 ~ /Guest RAM digest for CMD_VTPM_RAM_DIGEST/ {
             on = 1; print prev; print }
        { prev = $0 }
    ' "$dir/backends/tpm/tpm_emulator.c" >"$tmp/ram-digest-extract.c"
    if ! grep -q '^static int tpm_emulator_send_ram_digest' "$tmp/ram-digest-extract.c"; then
        log "    ($name: digest code not found in the patched tpm_emulator.c)"
        rm -rf "$tmp"
        return 1
    fi
    # shellcheck disable=SC2046
    if ! gcc -std=gnu11 -O2 -Wall -Wextra -Werror -Wno-unused-parameter \
             -Wno-unused-function ${variant:+-D$variant} -I"$tmp" \
             $(pkg-config --cflags glib-2.0) "$here/ram-digest-test.c" \
             -o "$tmp/ram-digest-test" $(pkg-config --libs glib-2.0) \
             2>"$tmp/gcc.log"; then
        sed 's/^/    /' "$tmp/gcc.log" >&2
        rm -rf "$tmp"
        return 1
    fi
    cat >"$tmp/ref.py" <<'PY'
import hashlib, subprocess, sys

P = 4096

def mth(leaves):
    # RFC 6962 section 2.1
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()

def expect(phase, blocks):
    leaves = []
    for n, (name, size, mig) in enumerate(blocks):
        data = bytes((i * 31 + n * 7 + (i >> 12)) & 0xff for i in range(size))
        if mig:
            leaves += [hashlib.sha256(b"\x00" + data[o:o + P]).digest()
                       for o in range(0, size, P)]
    return (bytes.fromhex("76540002") + phase.to_bytes(4, "big")
            + (0x0b).to_bytes(4, "big") + P.to_bytes(4, "big")
            + len(leaves).to_bytes(8, "big") + mth(leaves))

def run(*args):
    return subprocess.run([sys.argv[1]] + [str(a) for a in args],
                          capture_output=True, text=True).stdout.strip()

cases = [
    (1, []),
    (2, [("pc.ram", 0, 1)]),
    (1, [("pc.ram", P, 1)]),
    (2, [("pc.ram", 2 * P, 1)]),
    (1, [("pc.ram", 3 * P, 1)]),
    (1, [("pc.ram", 5 * P, 1), ("vga.vram", 2 * P, 0), ("pc.rom", 2 * P, 1)]),
    (2, [("a", 7 * P - 100, 1), ("b", 1, 1), ("c", 0, 1)]),
    (1, [("pc.ram", 64 * P, 1), ("x", 64 * P, 1)]),
    (2, [("pc.ram", 1000 * P + 17, 1), ("pc.bios", 33 * P, 1),
         ("nomig", 9 * P, 0)]),
]
bad = []
for phase, blocks in cases:
    got = run("40000000", phase, 0, *["%s:%d:%d" % b for b in blocks])
    want = "ret=0 sent=" + expect(phase, blocks).hex()
    if got != want:
        bad.append("%r: got %s want %s" % (blocks, got, want))
got = run("50000000", 3, 0, "a:4096:1")
if got != "ret=0 sent=" + expect(3, [("a", 4096, 1)]).hex():
    bad.append("phase 3 (stream complete) with bit 28: " + got)
got = run("40000000", 3, 0, "a:4096:1")
if got != "ret=0 sent=":
    bad.append("phase 3 sent without PTM_CAP_VTPM_VERIFY_RAM (bit 28): " + got)
got = run("50000000", 3, 9, "a:4096:1")
if not got.startswith("ret=-1 sent=76540002"):
    bad.append("a refusing phase-3 tpm_result was not a failure: " + got)
got = run("3fffffff", 1, 0, "a:4096:1")
if got != "ret=0 sent=":
    bad.append("sent without the capability bit: " + got)
got = run("40000000", 2, 9, "a:4096:1")
if not got.startswith("ret=-1 sent=76540002"):
    bad.append("a refusing tpm_result was not a failure: " + got)
for b in bad:
    print("    " + b, file=sys.stderr)
print("%d/%d" % (len(cases) + 5 - len(bad), len(cases) + 5))
sys.exit(1 if bad else 0)
PY
    local res
    if res=$(python3 "$tmp/ref.py" "$tmp/ram-digest-test" 2>/dev/null) &&
       [ -n "$res" ]; then
        log "    ($name: digest code: $res wire/RFC 6962 cases match)"
        rm -rf "$tmp"
        return 0
    fi
    python3 "$tmp/ref.py" "$tmp/ram-digest-test" >&2 || true
    rm -rf "$tmp"
    return 1
}

# dry_run NAME PATCH DIR [VARIANT]: dry-run, then apply to a scratch copy
# of the patched files and run the digest test on the result.
dry_run() {
    local name=$1 p=$2 dir=$3 variant=${4:-} out tmp
    local list=("${files[@]}")
    [ "$variant" = QEMU_CURRENT ] && list=("${files_cur[@]}")
    if [ ! -f "$p" ]; then
        printf '%s: does not apply: %s is missing\n' "$name" "$(basename "$p")"
        return 1
    fi
    # --fuzz=0: a hunk whose context does not match exactly is a failure
    # (with fuzz, patch may silently drop context lines and misplace it).
    if ! out=$(patch -d "$dir" -p1 --dry-run --forward --batch --fuzz=0 <"$p" 2>&1); then
        local why
        why=$(printf '%s\n' "$out" | grep -iE 'fail|reject|can.t find|malformed|previously applied|garbage' | head -n3 | tr '\n' ' ')
        if patch -d "$dir" -p1 --dry-run --forward --batch <"$p" >/dev/null 2>&1; then
            why="only with fuzz (context differs): $why"
        fi
        printf '%s: does not apply: %s\n' "$name" "$why"
        return 1
    fi
    if printf '%s' "$out" | grep -q 'offset\|fuzz'; then
        log "    ($name: $(printf '%s\n' "$out" | grep 'offset\|fuzz' | tr '\n' ' '))"
    fi
    tmp=$(mktemp -d)
    copy_files "$dir" "$tmp" "${list[@]}"
    if ! patch -d "$tmp" -p1 -s --batch --fuzz=0 --no-backup-if-mismatch <"$p" >/dev/null ||
       ! digest_test "$name" "$tmp" "$variant"; then
        rm -rf "$tmp"
        printf '%s: applies, but the patched digest code FAILS its test\n' "$name"
        return 1
    fi
    rm -rf "$tmp"
    printf '%s: applies\n' "$name"
}

rc=0
skipped=()

tree=$(prepare_debian_src) || exit $?
dry_run "qemu-7.2 (Debian $(cat "$tree/.complete"))" "$patch_72" "$tree" || rc=1

if [ -n "${QEMU_CURRENT_SRC:-}" ]; then
    [ -f "$QEMU_CURRENT_SRC/backends/tpm/tpm_emulator.c" ] ||
        die "QEMU_CURRENT_SRC=$QEMU_CURRENT_SRC has no backends/tpm/tpm_emulator.c"
    desc=$(git -C "$QEMU_CURRENT_SRC" describe --tags --always 2>/dev/null || echo unknown)
    dry_run "qemu-current ($desc)" "$patch_cur" "$QEMU_CURRENT_SRC" QEMU_CURRENT || rc=1
else
    # The tpm_emulator.c and tpm_ioctl.h hunks' context is the same as in
    # 7.2, so the current patch's digest code can still be run through the
    # digest test on the 7.2 files (its other files have moved since 7.2).
    tmp=$(mktemp -d)
    copy_files "$tree" "$tmp" "${files[@]:0:2}"
    if [ -f "$patch_cur" ] &&
       only_files "${files[@]:0:2}" <"$patch_cur" |
           patch -d "$tmp" -p1 -s --batch --fuzz=0 --no-backup-if-mismatch >/dev/null &&
       digest_test qemu-current "$tmp" QEMU_CURRENT; then
        note="its digest code passes the test"
    else
        note="and its digest code FAILS the test"
        rc=1
    fi
    rm -rf "$tmp"
    [ ${#skipped[@]} -eq 0 ] || note="its digest code was not tested"
    echo "qemu-current: not checked (set QEMU_CURRENT_SRC=/path/to/qemu/checkout; this host reaches only Debian's mirror, so there is no current QEMU here to dry-run against; $note)"
fi

if [ "$rc" -eq 0 ] && [ ${#skipped[@]} -gt 0 ]; then
    printf '# SKIP: %s\n' "${skipped[@]}"
    exit 77
fi
exit $rc

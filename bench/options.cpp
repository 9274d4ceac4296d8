#include "options.hpp"

#include <unistd.h>

#include <cstdlib>
#include <string>

namespace bench {
namespace {

bool parse_int(const char* s, int min, int& out) {
    char* end = nullptr;
    long v = std::strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < min || v > 100000) return false;
    out = static_cast<int>(v);
    return true;
}

// `name` in the directory of `path` (the current one if it has none).
std::string beside(const std::string& path, const char* name) {
    const auto slash = path.rfind('/');
    return (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) + name;
}

ParseResult bad(const char* option, const char* value) {
    std::fprintf(stderr, "vtpm-bench: bad value for %s: %s\n", option, value);
    return ParseResult::kError;
}

}  // namespace

void print_usage(std::FILE* out) {
    std::fprintf(out,
                 "usage: vtpm-bench --ours PATH [--theirs PATH] [--mode M] [--cpu N] [--rounds N] [--quick]\n"
                 "                  [--state theirs|ours|separate] [--only TEXT] [--json FILE] [--floor PATH]\n"
                 "  --ours PATH     our server, run as `PATH socket --tpm2 ...` (required)\n"
                 "  --theirs PATH   the reference (default /usr/bin/swtpm)\n"
                 "  --mode M        unpinned: no process is pinned (what a host does); pinned: both servers\n"
                 "                  on one CPU, the client on another; both (default): unpinned, then pinned\n"
                 "  --cpu N         CPU both servers are pinned to in pinned mode (default 1)\n"
                 "  --rounds N      measured rounds per operation (default 20, --quick: 2)\n"
                 "  --quick         smoke run: few rounds, small batches\n"
                 "  --state MODE    theirs (default) | ours: both servers start from one permall manufactured\n"
                 "                  by that server, so CreatePrimary derives the same keys on both (and\n"
                 "                  the other one proves it reads that state); separate: each its own\n"
                 "  --only TEXT     only the operations whose name contains TEXT (\"cold start\" and\n"
                 "                  \"manufacturing\" are ones)\n"
                 "  --json FILE     also write the results as JSON (pinned mode of --mode both: FILE.pinned)\n"
                 "  --setup-ours PATH    vtpm-setup (default: beside --ours)\n"
                 "  --setup-theirs PATH  reference setup tool (default /usr/bin/swtpm_setup)\n"
                 "  --floor PATH    the floor server, a libtpms-linked server that answers GetRandom\n"
                 "                  without a TPM: its rows are the lowest any server reaches here\n"
                 "                  (default: vtpm-bench-floor beside vtpm-bench; \"none\": no floor rows)\n"
                 "Exit status: 0 when the run completed (whatever the targets say), 1 on errors.\n");
}

ParseResult parse_options(int argc, char** argv, Options& o) {
    bool rounds_given = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") return ParseResult::kHelp;
        if (a == "--quick") {
            o.quick = true;
            continue;
        }
        if (i + 1 >= argc) {
            std::fprintf(stderr, "vtpm-bench: unknown option or missing value: %s\n", a.c_str());
            return ParseResult::kError;
        }
        const char* v = argv[++i];
        if (a == "--ours") {
            o.ours = v;
        } else if (a == "--theirs") {
            o.theirs = v;
        } else if (a == "--setup-ours") {
            o.setup_ours = v;
        } else if (a == "--setup-theirs") {
            o.setup_theirs = v;
        } else if (a == "--floor") {
            o.floor = v;
        } else if (a == "--json") {
            o.json = v;
        } else if (a == "--only") {
            o.only = v;
        } else if (a == "--mode") {
            o.mode = v;
            if (o.mode != "unpinned" && o.mode != "pinned" && o.mode != "both") return bad("--mode", v);
        } else if (a == "--cpu") {
            if (!parse_int(v, 0, o.cpu)) return bad("--cpu", v);
        } else if (a == "--rounds") {
            if (!parse_int(v, 1, o.rounds)) return bad("--rounds", v);
            rounds_given = true;
        } else if (a == "--state") {
            o.state = v;
            if (o.state != "theirs" && o.state != "ours" && o.state != "separate") return bad("--state", v);
        } else {
            std::fprintf(stderr, "vtpm-bench: unknown option %s\n", a.c_str());
            return ParseResult::kError;
        }
    }
    if (o.quick && !rounds_given) o.rounds = 2;
    if (o.ours.empty()) {
        std::fprintf(stderr, "vtpm-bench: --ours PATH is required\n");
        return ParseResult::kError;
    }
    if (o.setup_ours.empty()) o.setup_ours = beside(o.ours, "vtpm-setup");
    if (o.floor.empty()) {
        char self[4096];
        const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
        o.floor = beside(n > 0 ? std::string(self, static_cast<size_t>(n)) : std::string(argv[0]), "vtpm-bench-floor");
    }
    return ParseResult::kRun;
}

}  // namespace bench

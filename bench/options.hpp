// Command line of vtpm-bench.
#pragma once

#include <cstdio>
#include <string>

namespace bench {

struct Options {
    std::string ours;                      // --ours PATH (required)
    std::string theirs = "/usr/bin/swtpm"; // --theirs PATH
    std::string setup_ours;                // --setup-ours PATH (default: vtpm-setup beside --ours)
    std::string setup_theirs = "/usr/bin/swtpm_setup";  // --setup-theirs PATH
    std::string floor;                     // --floor PATH (default: vtpm-bench-floor beside vtpm-bench)
    std::string json;                      // --json FILE
    std::string only;                      // --only TEXT: operations whose name contains it
    std::string state = "theirs";          // who manufactures the shared permall, or "separate"
    int cpu = 1;                           // CPU of both servers when pinned
    std::string mode = "both";             // unpinned | pinned | both (unpinned first)
    int rounds = 20;                       // measured rounds per operation
    bool quick = false;
};

enum class ParseResult { kRun, kHelp, kError };

/// Parse argv; errors are reported on stderr.
ParseResult parse_options(int argc, char** argv, Options& o);
void print_usage(std::FILE* out);

}  // namespace bench

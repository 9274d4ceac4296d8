// Summaries of latency samples and the report (table on stdout, JSON file).
#pragma once

#include <cstddef>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "vtpm/result.hpp"

namespace bench {

struct Summary {
    double median = 0;
    double p99 = 0;
    size_t n = 0;
};

/// Median and p99 (nearest rank) of the samples.
Summary summarize(std::vector<double> samples);
/// Nearest-rank percentile (p in [0,1]) of a sorted, non-empty vector.
double percentile_sorted(const std::vector<double>& sorted, double p);

/// Samples of one series on one server, one vector per measured round.
using Rounds = std::vector<std::vector<double>>;

/// One line of the report. Latency rows are in µs; memory rows are single
/// readings in KiB (p99 left empty).
struct Row {
    std::string op;
    bool memory = false;
    Summary ours, theirs;
    double target = 0;  // ratio target (ours/swtpm medians); 0 = for information only
    /// p25-p75 of the per-round ratios of medians: how much the ratio moves
    /// from round to round (the noise floor next to the overall ratio).
    std::optional<std::pair<double, double>> round_ratio_iqr;
    /// Server CPU time (user + system) per iteration of the operation, µs:
    /// median over rounds, ours and swtpm. On the operation's first row.
    std::optional<std::pair<double, double>> cpu;

    double cpu_ratio() const { return cpu && cpu->second > 0 ? cpu->first / cpu->second : 0; }

    double ratio() const { return theirs.median > 0 ? ours.median / theirs.median : 0; }
    bool has_target() const { return target > 0; }
    bool pass() const { return has_target() && ratio() <= target; }
    /// The target lies within the round-to-round spread: the verdict could
    /// flip on another run.
    bool within_noise() const {
        return has_target() && round_ratio_iqr && round_ratio_iqr->first <= target && target <= round_ratio_iqr->second;
    }
};

/// A latency row from all rounds of both servers (rounds are paired by index).
Row latency_row(const std::string& op, double target, const Rounds& ours, const Rounds& theirs);
/// Median of per-round CPU readings.
double cpu_median(const Rounds& rounds);
/// A memory row from one reading per server.
Row memory_row(const std::string& op, double target, long ours_kb, long theirs_kb);

struct RunInfo {
    std::string ours_exe, theirs_exe, state_mode;
    int server_cpu = 1, client_cpu = 0, rounds = 0;
    bool quick = false;
    double seconds = 0;
};

void print_table(std::FILE* out, const std::vector<Row>& rows);
vtpm::Result<void> write_json(const std::string& path, const RunInfo& info, const std::vector<Row>& rows);

}  // namespace bench

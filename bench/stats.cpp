#include "stats.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>

namespace bench {
namespace {

std::vector<double> flatten(const Rounds& rounds) {
    std::vector<double> all;
    for (const auto& r : rounds) all.insert(all.end(), r.begin(), r.end());
    return all;
}

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
};

}  // namespace

double percentile_sorted(const std::vector<double>& sorted, double p) {
    // Nearest rank: the smallest value with at least p of the samples at or below it.
    size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
    return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

Summary summarize(std::vector<double> samples) {
    Summary s;
    s.n = samples.size();
    if (samples.empty()) return s;
    std::sort(samples.begin(), samples.end());
    size_t n = samples.size();
    s.median = n % 2 ? samples[n / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2;
    s.p99 = percentile_sorted(samples, 0.99);
    return s;
}

double cpu_median(const Rounds& rounds) { return summarize(flatten(rounds)).median; }

Row latency_row(const std::string& op, double target, const Rounds& ours, const Rounds& theirs) {
    Row row;
    row.op = op;
    row.target = target;
    row.ours = summarize(flatten(ours));
    row.theirs = summarize(flatten(theirs));
    std::vector<double> ratios;
    for (size_t i = 0; i < std::min(ours.size(), theirs.size()); ++i) {
        double b = summarize(theirs[i]).median;
        if (b > 0) ratios.push_back(summarize(ours[i]).median / b);
    }
    if (ratios.size() >= 4) {
        std::sort(ratios.begin(), ratios.end());
        row.round_ratio_iqr = std::make_pair(percentile_sorted(ratios, 0.25), percentile_sorted(ratios, 0.75));
    }
    return row;
}

Row memory_row(const std::string& op, double target, long ours_kb, long theirs_kb) {
    Row row;
    row.op = op;
    row.memory = true;
    row.target = target;
    row.ours = {static_cast<double>(ours_kb), 0, 1};
    row.theirs = {static_cast<double>(theirs_kb), 0, 1};
    return row;
}

void print_table(std::FILE* out, const std::vector<Row>& rows) {
    const char* const head = "%-40s %9s %9s %9s %9s %6s %7s %-6s %-10s %5s %8s %8s %6s\n";
    std::fprintf(out, head, "operation", "ours med", "ours p99", "swtpm med", "swtpm p99", "ratio", "target", "result",
                 "round", "n", "CPU/op", "CPU/op", "CPU");
    std::fprintf(out, head, "", "(us | KiB)", "", "", "", "o/s med", "", "", "p25-p75", "", "ours us", "swtpm us",
                 "o/s");
    for (const Row& r : rows) {
        char om[32], op[32] = "", tm[32], tp[32] = "", ratio[16], target[16] = "-", iqr[32] = "", n[16] = "";
        char co[16] = "", ct[16] = "", cr[16] = "";
        if (r.cpu) {
            std::snprintf(co, sizeof co, "%.1f", r.cpu->first);
            std::snprintf(ct, sizeof ct, "%.1f", r.cpu->second);
            std::snprintf(cr, sizeof cr, "%.3f", r.cpu_ratio());
        }
        const char* fmt = r.memory ? "%.0f" : "%.1f";
        std::snprintf(om, sizeof om, fmt, r.ours.median);
        std::snprintf(tm, sizeof tm, fmt, r.theirs.median);
        if (!r.memory) {
            std::snprintf(op, sizeof op, "%.1f", r.ours.p99);
            std::snprintf(tp, sizeof tp, "%.1f", r.theirs.p99);
            std::snprintf(n, sizeof n, "%zu", r.ours.n);
        }
        std::snprintf(ratio, sizeof ratio, "%.3f", r.ratio());
        if (r.has_target()) std::snprintf(target, sizeof target, "<=%.2f", r.target);
        if (r.round_ratio_iqr)
            std::snprintf(iqr, sizeof iqr, "%.2f-%.2f", r.round_ratio_iqr->first, r.round_ratio_iqr->second);
        std::string verdict = !r.has_target() ? "info" : r.pass() ? "PASS" : "MISS";
        if (r.within_noise()) verdict += "~";
        std::fprintf(out, head, r.op.c_str(), om, op, tm, tp, ratio, target, verdict.c_str(), iqr, n, co, ct, cr);
    }
    std::fprintf(out,
                 "ratio = ours median / swtpm median; round ratio = spread of that ratio between rounds;\n"
                 "~ = the target lies inside that spread (verdict within noise); n = samples per server;\n"
                 "CPU/op = the server's CPU time (user + system) per iteration of the operation (all of its rows),\n"
                 "median over rounds; CPU o/s = ours / swtpm, target <= 1.00.\n");
}

vtpm::Result<void> write_json(const std::string& path, const RunInfo& info, const std::vector<Row>& rows) {
    std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "w"));
    if (!f) return vtpm::make_error(vtpm::rc::kIoError, "cannot write " + path + ": " + std::strerror(errno));
    std::FILE* o = f.get();
    std::fprintf(o, "{\n  \"ours\": %s,\n  \"theirs\": %s,\n", json_string(info.ours_exe).c_str(),
                 json_string(info.theirs_exe).c_str());
    std::fprintf(o, "  \"server_cpu\": %d,\n  \"client_cpu\": %d,\n  \"rounds\": %d,\n  \"quick\": %s,\n",
                 info.server_cpu, info.client_cpu, info.rounds, info.quick ? "true" : "false");
    std::fprintf(o, "  \"state\": %s,\n  \"run_seconds\": %.1f,\n  \"rows\": [\n", json_string(info.state_mode).c_str(),
                 info.seconds);
    for (size_t i = 0; i < rows.size(); ++i) {
        const Row& r = rows[i];
        std::fprintf(o, "    {\"op\": %s, \"unit\": \"%s\", ", json_string(r.op).c_str(), r.memory ? "KiB" : "us");
        if (r.memory)
            std::fprintf(o, "\"ours\": %.0f, \"swtpm\": %.0f, ", r.ours.median, r.theirs.median);
        else
            std::fprintf(o,
                         "\"ours_median\": %.2f, \"ours_p99\": %.2f, \"swtpm_median\": %.2f, \"swtpm_p99\": %.2f, "
                         "\"samples\": %zu, ",
                         r.ours.median, r.ours.p99, r.theirs.median, r.theirs.p99, r.ours.n);
        std::fprintf(o, "\"ratio\": %.4f, ", r.ratio());
        if (r.cpu)
            std::fprintf(o, "\"cpu_us_ours\": %.2f, \"cpu_us_swtpm\": %.2f, \"cpu_ratio\": %.4f, ", r.cpu->first,
                         r.cpu->second, r.cpu_ratio());
        if (r.round_ratio_iqr)
            std::fprintf(o, "\"round_ratio_p25\": %.4f, \"round_ratio_p75\": %.4f, ", r.round_ratio_iqr->first,
                         r.round_ratio_iqr->second);
        if (r.has_target())
            std::fprintf(o, "\"target\": %.2f, \"result\": \"%s\", \"within_noise\": %s}", r.target,
                         r.pass() ? "PASS" : "MISS", r.within_noise() ? "true" : "false");
        else
            std::fprintf(o, "\"target\": null, \"result\": \"info\"}");
        std::fprintf(o, "%s\n", i + 1 < rows.size() ? "," : "");
    }
    std::fprintf(o, "  ]\n}\n");
    if (std::fflush(o) != 0) return vtpm::make_error(vtpm::rc::kIoError, "writing " + path + " failed");
    return {};
}

}  // namespace bench

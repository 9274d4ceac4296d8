// vtpm-bench: our swtpm replacement ("ours") and Debian's swtpm side by side
// in one run. Both servers are pinned to the same CPU and the client to
// another; each server has one long-lived client connection per channel;
// every operation runs in alternating batches (ours/swtpm, then swtpm/ours,
// ...), a warm-up batch discarded. Prints median and p99 per operation, the
// ratio ours/swtpm of the medians and the target it is held to. Targets are
// reported, never turned into an exit code: exit 1 means the run failed.
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <map>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cold_start.hpp"
#include "manufacture.hpp"
#include "net.hpp"
#include "ops.hpp"
#include "options.hpp"
#include "runner.hpp"
#include "server.hpp"
#include "stats.hpp"
#include "tpm_cmds.hpp"

namespace bench {
namespace {

using Clock = std::chrono::steady_clock;
using vtpm::Result;

constexpr const char* kPermall = "tpm2-00.permall";
constexpr double kColdStartTarget = 0.5;
constexpr double kMemoryTarget = 1.0;
constexpr double kManufactureTarget = 0.2;
constexpr double kNvFloorTarget = 1.1;
constexpr double kHotTarget = 0.9;
constexpr const char* kFloorRandomRow = "[floor] GetRandom(32), no TPM";
constexpr const char* kFloorColdRow = "[floor] cold start, no TPM";

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// One measuring step with its progress on stderr: the label, then its
/// time (and `note`) or "failed". Returns what the step returned.
template <class Step>
auto timed_step(const std::string& label, Step&& step, const char* note = "") {
    std::fprintf(stderr, "  %-20s ", label.c_str());
    const auto t0 = Clock::now();
    auto r = step();
    if (r) std::fprintf(stderr, "%6.2f s%s\n", seconds_since(t0), note);
    else std::fprintf(stderr, "failed\n");
    return r;
}

/// Pin the calling thread to an allowed CPU other than `avoid`; returns it.
int pin_client(const cpu_set_t& allowed, int avoid) {
    int chosen = avoid;
    for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &allowed) && c != avoid) {
            chosen = c;
            break;
        }
    if (chosen == avoid) std::fprintf(stderr, "vtpm-bench: warning: no second CPU, the client shares CPU %d\n", avoid);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(chosen, &set);
    ::sched_setaffinity(0, sizeof set, &set);
    return chosen;
}

// Manufacture a TPM with `exe` in `dir` (start, one command, stop): the
// permall both servers then start from.
Result<std::string> manufacture(const std::string& name, const std::string& exe, const std::string& dir,
                                const std::string& work, int cpu) {
    if (auto r = run_one_command({name, exe, dir, work + "/manufacture.log", cpu}); !r) return r.error();
    const std::string permall = dir + "/" + kPermall;
    if (!std::filesystem::exists(permall)) return vtpm::make_error(vtpm::rc::kFail, name + " wrote no " + permall);
    return permall;
}

struct MemoryReading {
    long ours = 0, theirs = 0;
};

Result<MemoryReading> read_memory(const Target& ours, const Target& theirs, const char* field) {
    auto a = ours.server->status_kb(field);
    if (!a) return a.error();
    auto b = theirs.server->status_kb(field);
    if (!b) return b.error();
    return MemoryReading{*a, *b};
}

// Everything one run owns. Members are destroyed in reverse order: the
// servers stop before their directories are removed.
struct Run {
    const Options& o;
    TempDir work, ours_state, theirs_state;
    Target ours, theirs;
    std::string cold_permall_ours, cold_permall_theirs;  // what the cold starts copy
    std::vector<Row> rows;

    // After a failure: say which server died, if one did.
    void report_dead_servers() {
        for (Target* t : {&ours, &theirs})
            if (std::string note = t->server->death_note(); !note.empty())
                std::fprintf(stderr, "vtpm-bench: server died%s", note.c_str());
    }

    Result<void> start_servers() {
        if (o.state != "separate") {
            const bool by_ours = o.state == "ours";
            auto seed = TempDir::create(work.path(), "seed-");
            if (!seed) return seed.error();
            auto permall = manufacture(by_ours ? "ours (manufacturing)" : "swtpm (manufacturing)",
                                       by_ours ? o.ours : o.theirs, seed->path(), work.path(), o.cpu);
            if (!permall) return permall.error();
            cold_permall_ours = cold_permall_theirs = work.path() + "/" + kPermall;
            for (const std::string& dir : {ours_state.path(), theirs_state.path(), work.path()})
                if (auto r = copy_into(*permall, dir); !r) return r;
        }
        if (auto r = start_pair(false); !r) return r;
        if (o.state == "separate") {
            // Copies of each server's own fresh state (it has the NV index from setup; harmless).
            for (auto [t, dest] : {std::pair{&ours, &cold_permall_ours}, std::pair{&theirs, &cold_permall_theirs}}) {
                const std::string dir = work.path() + "/permall-" + t->name();
                std::error_code ec;
                std::filesystem::create_directory(dir, ec);
                if (ec) return vtpm::make_error(vtpm::rc::kFail, "mkdir " + dir + ": " + ec.message());
                if (auto r = copy_into(t->server->state_dir() + "/" + kPermall, dir); !r) return r;
                *dest = dir + "/" + kPermall;
            }
        }
        return {};
    }

    // Start (or start again) both servers and set them up, swtpm first when
    // `theirs_first`. Unpinned, the scheduler tends to keep the server that
    // started first on the client's core (≈ 20 µs a round trip, against
    // ≈ 30 µs from the other core, and a few per cent even when both share
    // it) for as long as it runs: the unpinned run measures half of every
    // operation's rounds in each order.
    Result<void> start_pair(bool theirs_first) {
        Target* order[2] = {&ours, &theirs};
        if (theirs_first) std::swap(order[0], order[1]);
        for (Target* t : order) {
            t->data.reset();
            t->ctrl.reset();
            t->server->stop();
        }
        for (Target* t : order) {
            if (auto r = t->server->start(); !r) return r.error();
            if (auto r = setup_target(*t); !r)
                return vtpm::make_error(r.code(), "setting up " + t->name() + ": " + r.error().message);
        }
        return {};
    }

    // A warm-up pass over every operation on both servers (discarded).
    Result<void> warm_up(const std::vector<Op>& ops) {
        for (const Op& op : ops)
            for (Target* t : {&ours, &theirs}) {
                if (auto r = prepare(op, *t); !r) return r;
                if (auto r = run_batch(op, *t, batch_size(op, o.quick), true); !r) return r;
            }
        return {};
    }

    Result<void> measure_latencies() {
        std::vector<Op> ops = latency_ops();
        std::erase_if(ops, [&](const Op& op) { return op.name.find(o.only) == std::string::npos; });
        // Warm up, then the first RSS reading.
        if (auto r = warm_up(ops); !r) return r;
        auto rss_warm = read_memory(ours, theirs, "VmRSS");
        if (!rss_warm) return rss_warm.error();

        // Unpinned: half the rounds with ours started first (above), then
        // both started again, swtpm first, for the other half.
        const bool both_orders = o.cpu < 0 && o.rounds >= 2;
        for (int half = 0; half < (both_orders ? 2 : 1); ++half) {
            const int rounds = both_orders ? (half == 0 ? (o.rounds + 1) / 2 : o.rounds / 2) : o.rounds;
            if (half == 1) {
                if (auto r = start_pair(true); !r) return r;
                if (auto r = warm_up(ops); !r) return r;
            }
            const char* note = both_orders ? (half == 0 ? " (ours started first)" : " (swtpm started first)") : "";
            for (const Op& op : ops)
                if (auto r = timed_step(op.name, [&] { return measure(op, ours, theirs, rounds, o.quick); }, note); !r)
                    return r;
        }
        for (const Op& op : ops) {
            for (const RowSpec& spec : op.rows) {
                rows.push_back(
                    latency_row(spec.series, spec.target, ours.samples[spec.series], theirs.samples[spec.series]));
                if (&spec == &op.rows.front())
                    rows.back().cpu = {cpu_median(ours.cpu_us[op.name]), cpu_median(theirs.cpu_us[op.name])};
            }
        }
        auto rss_end = read_memory(ours, theirs, "VmRSS");
        if (!rss_end) return rss_end.error();
        auto hwm = read_memory(ours, theirs, "VmHWM");
        if (!hwm) return hwm.error();
        rows.push_back(memory_row("RSS after warm-up (KiB)", kMemoryTarget, rss_warm->ours, rss_warm->theirs));
        rows.push_back(memory_row("RSS after all ops (KiB)", kMemoryTarget, rss_end->ours, rss_end->theirs));
        rows.push_back(memory_row("peak RSS, VmHWM (KiB)", 0, hwm->ours, hwm->theirs));
        auto uss_ours = ours.server->private_kb();
        auto uss_theirs = theirs.server->private_kb();
        if (uss_ours && uss_theirs) rows.push_back(memory_row("private memory, USS (KiB)", 0, *uss_ours, *uss_theirs));
        // The files one server maps and the other does not (its executable,
        // swtpm's libswtpm_libtpms): how much of its own code stays resident.
        // Ours grows when layout/text-order.txt goes stale.
        auto files_ours = ours.server->file_rss_kb();
        auto files_theirs = theirs.server->file_rss_kb();
        if (files_ours && files_theirs) {
            auto own = [](const std::map<std::string, long>& mine, const std::map<std::string, long>& other) {
                long kb = 0;
                for (const auto& [path, rss] : mine)
                    if (!other.contains(path)) kb += rss;
                return kb;
            };
            rows.push_back(memory_row("own code resident (KiB)**", 0, own(*files_ours, *files_theirs),
                                      own(*files_theirs, *files_ours)));
        }
        return {};
    }

    // The physical floor of a durable NV write on this disk: a bare pwrite
    // of the state's size into an allocated file and fdatasync, nothing
    // else. Ours is held to 1.1x it (one flush per acknowledged write).
    // Measured in rounds of their own that alternate with rounds of ours
    // (ABBA), as the two servers do, so the disk's drift hits both alike.
    Result<void> measure_nv_floor() {
        const std::string nv_series = "NV_Write (32 bytes)";
        if (!ours.samples.count(nv_series)) return {};
        const std::vector<Op> ops = latency_ops();
        const auto op = std::find_if(ops.begin(), ops.end(), [](const Op& x) { return x.name == "NV_Write"; });
        if (op == ops.end()) return vtpm::make_error(vtpm::rc::kFail, "no NV_Write operation");
        std::error_code ec;
        const auto size = std::filesystem::file_size(theirs.server->state_dir() + "/" + kPermall, ec);
        if (ec) return vtpm::make_error(vtpm::rc::kFail, "no permall to size the floor: " + ec.message());
        const std::string path = work.path() + "/floor.bin";
        vtpm::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        if (!fd) return vtpm::make_error(vtpm::rc::kFail, "cannot create " + path);
        std::vector<uint8_t> buf(size, 0x5a);
        auto write_sync = [&]() -> bool {
            return ::pwrite(fd.get(), buf.data(), buf.size(), 0) == static_cast<ssize_t>(buf.size()) &&
                   ::fdatasync(fd.get()) == 0;
        };
        if (!write_sync() || ::fsync(fd.get()) != 0) return vtpm::make_error(vtpm::rc::kFail, "cannot write " + path);
        const int n = batch_size(*op, o.quick);
        Rounds floor;
        // Like run_batch: an untimed first write, then n timed ones.
        auto floor_batch = [&]() -> Result<void> {
            std::vector<double> samples;
            for (int i = 0; i <= n; ++i) {
                buf[static_cast<size_t>(i) % buf.size()] ^= 1;
                const auto a = Clock::now();
                if (!write_sync()) return vtpm::make_error(vtpm::rc::kFail, "writing " + path + " failed");
                if (i > 0) samples.push_back(std::chrono::duration<double, std::micro>(Clock::now() - a).count());
            }
            floor.push_back(std::move(samples));
            return {};
        };
        // The rounds of ours made here are the floor row's own; the
        // NV_Write row above keeps those measured beside swtpm.
        const size_t kept = ours.samples[nv_series].size(), kept_cpu = ours.cpu_us[op->name].size();
        auto alternate = [&]() -> Result<void> {
            for (int r = 0; r < o.rounds * op->rounds_scale; ++r)
                for (int k = 0; k < 2; ++k) {
                    if (auto x = (r + k) % 2 == 0 ? run_batch(*op, ours, n, false) : floor_batch(); !x) return x;
                    std::this_thread::sleep_for(std::chrono::milliseconds(2));
                }
            return {};
        };
        if (auto r = timed_step("NV_Write floor", alternate); !r) return r;
        Rounds& all = ours.samples[nv_series];
        Rounds paired(std::make_move_iterator(all.begin() + static_cast<std::ptrdiff_t>(kept)),
                      std::make_move_iterator(all.end()));
        all.resize(kept);
        ours.cpu_us[op->name].resize(kept_cpu);
        char name[96];
        std::snprintf(name, sizeof name, "NV_Write vs floor (write+fdatasync %zu B)*", static_cast<size_t>(size));
        auto at = std::find_if(rows.begin(), rows.end(), [&](const Row& r) { return r.op == nv_series; });
        if (at != rows.end()) ++at;
        rows.insert(at, latency_row(name, kNvFloorTarget, paired, floor));
        return {};
    }

    // Cold starts of `exe` (named `name`, from `permall`) and of swtpm.
    std::pair<ColdStartConfig, ColdStartConfig> cold_pair(const char* name, const std::string& exe,
                                                          const std::string& permall) const {
        return {{name, exe, permall, "", work.path(), o.cpu},
                {"swtpm", o.theirs, cold_permall_theirs, "", work.path(), o.cpu}};
    }

    int cold_rounds() const { return o.quick ? 3 : o.rounds; }

    Result<void> measure_cold_start() {
        if (std::string("cold start").find(o.only) == std::string::npos) return {};
        ColdStartSamples first, again;
        auto both_boots = [&]() -> Result<void> {
            auto [a, b] = cold_pair("ours", o.ours, cold_permall_ours);
            auto s = measure_cold_starts(a, b, cold_rounds());
            if (!s) return s.error();
            first = std::move(*s);
            // A second boot: the state directory as each server left it.
            auto ea = prepare_existing_state(a);
            if (!ea) return ea.error();
            auto eb = prepare_existing_state(b);
            if (!eb) return eb.error();
            a.existing_state = *ea;
            b.existing_state = *eb;
            s = measure_cold_starts(a, b, cold_rounds());
            if (!s) return s.error();
            again = std::move(*s);
            return {};
        };
        if (auto r = timed_step("cold start", both_boots); !r) return r;
        // Before the memory rows, after the latency rows.
        auto at = std::find_if(rows.begin(), rows.end(), [](const Row& r) { return r.memory; });
        at = rows.insert(at, latency_row("cold start, existing state", kColdStartTarget, again.a, again.b));
        rows.insert(at, latency_row("cold start, first boot (permall only)", kColdStartTarget, first.a, first.b));
        return {};
    }

    // The floor server (vtpm-bench-floor) beside swtpm: its ratios are the
    // lowest any libtpms-based server can reach on this machine, where the
    // targets may lie below what the kernel and the loader allow.
    Result<void> measure_floors() {
        const bool transport = std::string("GetRandom floor").find(o.only) != std::string::npos;
        const bool cold = std::string("cold start floor").find(o.only) != std::string::npos;
        if ((!transport && !cold) || o.floor == "none") return {};
        if (::access(o.floor.c_str(), X_OK) != 0) {
            std::fprintf(stderr, "  floor server         skipped (%s missing)\n", o.floor.c_str());
            return {};
        }
        if (transport) {
            Target floor;
            floor.server = std::make_unique<Server>(
                ServerConfig{"floor", o.floor, work.path(), work.path() + "/floor.log", o.cpu});
            const Op op = get_random_op("GetRandom floor", kFloorRandomRow, 0);
            auto start_and_measure = [&]() -> Result<void> {
                if (auto r = floor.server->start(); !r) return r.error();
                auto data = floor.server->connect_data();
                if (!data) return data.error();
                floor.data = std::move(*data);
                return measure(op, floor, theirs, o.rounds, o.quick);
            };
            if (auto r = timed_step(op.name, start_and_measure); !r) return r;
            Row row = latency_row(kFloorRandomRow, 0, floor.samples[kFloorRandomRow], theirs.samples[kFloorRandomRow]);
            row.cpu = {cpu_median(floor.cpu_us[op.name]), cpu_median(theirs.cpu_us[op.name])};
            auto at = std::find_if(rows.begin(), rows.end(), [](const Row& r) { return r.op == "GetRandom(32)"; });
            if (at != rows.end()) ++at;
            else at = std::find_if(rows.begin(), rows.end(), [](const Row& r) { return r.memory; });
            rows.insert(at, std::move(row));
        }
        if (cold) {
            const auto pair = cold_pair("floor", o.floor, cold_permall_theirs);
            auto s = timed_step("cold start floor",
                                [&] { return measure_cold_starts(pair.first, pair.second, cold_rounds()); });
            if (!s) return s.error();
            auto at = std::find_if(rows.begin(), rows.end(), [](const Row& r) { return r.memory; });
            rows.insert(at, latency_row(kFloorColdRow, 0, s->a, s->b));
        }
        return {};
    }

    // What the floor rows say about the targets: the lowest ratio any
    // server reaches here against each target.
    void print_floor_summary(bool pinned) const {
        auto find = [&](std::string_view prefix) -> const Row* {
            auto at = std::find_if(rows.begin(), rows.end(), [&](const Row& r) { return r.op.starts_with(prefix); });
            return at == rows.end() ? nullptr : &*at;
        };
        const Row* random = find(kFloorRandomRow);
        const Row* cold = find(kFloorColdRow);
        if (!random && !cold) return;
        std::printf("[floor] rows: ours is vtpm-bench-floor, linked to libtpms like any server, answering\n"
                    "GetRandom with zeros in one read and one write (its own thread blocked in read) and\n"
                    "starting no TPM: the lowest ratio a server reaches on this machine without busy-polling.\n"
                    "Against the targets:\n");
        if (!pinned) {
            // The floor server starts after swtpm and keeps the core it got,
            // next to the client's or not: its ratio is that placement's.
            std::printf("  none here: unpinned, the floor server keeps whatever core it got beside the running\n"
                        "  swtpm, so its rows give that placement, not a floor; the pinned run gives the floor\n");
            return;
        }
        auto line = [](const char* what, double lowest, double target) {
            std::printf("  %-44s lowest reachable %.2f, target %.2f: %s\n", what, lowest, target,
                        lowest <= target ? "reachable" : "below the floor");
        };
        if (random) line("hot commands (GetRandom(32) back to back)", random->ratio(), kHotTarget);
        if (cold) line("cold start", cold->ratio(), kColdStartTarget);
        const Row* nv = find("NV_Write vs floor");
        if (random && nv && nv->theirs.median > 0)
            line("NV_Write vs write+fdatasync (+ a round trip)", (nv->theirs.median + random->ours.median) / nv->theirs.median,
                 kNvFloorTarget);
    }

    Result<void> measure_manufacture() {
        if (std::string("manufacturing").find(o.only) == std::string::npos) return {};
        if (::access(o.setup_ours.c_str(), X_OK) != 0 || ::access(o.setup_theirs.c_str(), X_OK) != 0) {
            std::fprintf(stderr, "  manufacturing        skipped (%s or %s missing)\n", o.setup_ours.c_str(),
                         o.setup_theirs.c_str());
            return {};
        }
        auto s = timed_step("manufacturing", [&] {
            return measure_manufacturing({o.setup_ours, o.setup_theirs, work.path(), o.cpu}, o.quick ? 2 : 8);
        });
        if (!s) return s.error();
        auto at = std::find_if(rows.begin(), rows.end(), [](const Row& r) { return r.memory; });
        rows.insert(at, latency_row("manufacture (libvirt's setup)", kManufactureTarget, s->a, s->b));
        return {};
    }

    Result<void> report(const RunInfo& info) {
        std::printf("\n");
        print_table(stdout, rows);
        if (std::any_of(rows.begin(), rows.end(), [](const Row& r) { return r.op.starts_with("NV_Write vs floor"); }))
            std::printf("* its swtpm columns are the floor: a bare pwrite of the state's size and fdatasync, "
                        "on the same disk\n");
        if (std::any_of(rows.begin(), rows.end(), [](const Row& r) { return r.op.starts_with("own code resident"); }))
            std::printf(
                "** resident pages of the files only that server maps (its executable; swtpm's library):\n"
                "   ours grows when swtpm-bridge/layout/text-order.txt is stale (gen-text-order.py)\n");
        print_floor_summary(info.server_cpu >= 0);
        std::printf("\nours = %s, swtpm = %s\n", o.ours.c_str(), o.theirs.c_str());
        if (info.server_cpu < 0)
            std::printf("unpinned (servers and client where the scheduler puts them; half of every operation's rounds\n"
                        "after ours started first, half after swtpm started first)");
        else std::printf("pinned: servers on CPU %d, client on CPU %d", info.server_cpu, info.client_cpu);
        std::printf("; %d rounds; state: %s; %.1f s\n", o.rounds, info.state_mode.c_str(), info.seconds);
        if (const char* spin = std::getenv("VTPM_BUSY_POLL_US"); spin && std::atoi(spin) > 0)
            std::printf("ours busy-polls up to %s us after each answer (VTPM_BUSY_POLL_US; off by default)\n", spin);
        for (const Target* t : {&ours, &theirs})
            if (t->retries > 0)
                std::printf("note: %s answered TPM_RC_RETRY %d times (resubmitted, included in the timings)\n",
                            t->name().c_str(), t->retries);
        std::fflush(stdout);
        if (o.json.empty()) return {};
        return write_json(o.json, info, rows);
    }
};

Result<void> check_executable(const std::string& path) {
    if (::access(path.c_str(), X_OK) != 0) return vtpm::make_error(vtpm::rc::kFail, path + " is not an executable");
    return {};
}

Result<void> run(const Options& o, int client_cpu) {
    const auto started = Clock::now();
    for (const std::string& exe : {o.ours, o.theirs})
        if (auto r = check_executable(exe); !r) return r;
    std::error_code ec;
    const std::filesystem::path tmp = std::filesystem::temp_directory_path(ec);
    auto work = TempDir::create(ec ? "/tmp" : tmp.string(), "vtpm-bench-");
    if (!work) return work.error();
    auto ours_state = TempDir::create(work->path(), "state-ours-");
    if (!ours_state) return ours_state.error();
    auto theirs_state = TempDir::create(work->path(), "state-swtpm-");
    if (!theirs_state) return theirs_state.error();

    Run run{o, std::move(*work), std::move(*ours_state), std::move(*theirs_state), {}, {}, {}, {}, {}};
    const std::string& w = run.work.path();
    run.ours.server =
        std::make_unique<Server>(ServerConfig{"ours", o.ours, run.ours_state.path(), w + "/ours.log", o.cpu});
    run.theirs.server =
        std::make_unique<Server>(ServerConfig{"swtpm", o.theirs, run.theirs_state.path(), w + "/swtpm.log", o.cpu});

    for (auto phase : {&Run::start_servers, &Run::measure_latencies, &Run::measure_nv_floor, &Run::measure_cold_start,
                        &Run::measure_floors, &Run::measure_manufacture}) {
        if (auto r = (run.*phase)(); !r) {
            run.report_dead_servers();
            return r;
        }
    }
    return run.report({o.ours, o.theirs, o.state, o.cpu, client_cpu, o.rounds, o.quick, seconds_since(started)});
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
    bench::Options o;
    switch (bench::parse_options(argc, argv, o)) {
        case bench::ParseResult::kRun: break;
        case bench::ParseResult::kHelp: bench::print_usage(stdout); return 0;
        case bench::ParseResult::kError: bench::print_usage(stderr); return 1;
    }
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
        std::fprintf(stderr, "vtpm-bench: cannot read this process's CPU affinity\n");
        return 1;
    }
    std::vector<bool> modes;  // pinned?
    if (o.mode != "pinned") modes.push_back(false);
    if (o.mode != "unpinned") modes.push_back(true);
    for (bool pinned : modes) {
        bench::Options m = o;
        int client_cpu = -1;
        if (pinned) {
            if (o.cpu >= CPU_SETSIZE || !CPU_ISSET(o.cpu, &allowed)) {
                std::fprintf(stderr, "vtpm-bench: CPU %d is not available to this process\n", o.cpu);
                return 1;
            }
            client_cpu = bench::pin_client(allowed, o.cpu);
            if (o.mode == "both" && !o.json.empty()) m.json = o.json + ".pinned";
        } else {
            m.cpu = -1;
            ::sched_setaffinity(0, sizeof allowed, &allowed);
        }
        std::printf("\n== %s ==\n", pinned ? "pinned" : "unpinned");
        std::fflush(stdout);
        std::fprintf(stderr, "vtpm-bench: %s run\n", pinned ? "pinned" : "unpinned");
        if (auto r = bench::run(m, client_cpu); !r) {
            std::fprintf(stderr, "vtpm-bench: %s\n", r.error().message.c_str());
            return 1;
        }
    }
    return 0;
}

// vtpm-bench: our bridge and Debian's swtpm side by side in one run,
// interleaved, both pinned to the same CPU, each with a long-lived client.
// Prints median / p99 per operation and the ratio ours/swtpm.
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "server_proc.hpp"
#include "tpm_cmds.hpp"

namespace fs = std::filesystem;
using namespace bench;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
    std::string ours, theirs = "/usr/bin/swtpm", json;
    int cpu = 1;
    bool quick = false;
};

// One server under measurement with its connections and per-op state.
struct Target {
    std::unique_ptr<ServerProc> proc;
    int data = -1, ctrl = -1;
    TPM2_HANDLE quote_key = 0;
    Bytes perm_blob, vol_blob;
    uint8_t counter = 0;
    uint32_t variant = 0;  // makes every CreatePrimary derive a new key
    std::map<std::string, std::vector<double>> samples;  // microseconds
};

void expect_ok(const Bytes& rsp, const std::string& op, const Target& t) {
    uint32_t rc = response_code(rsp);
    if (rc != 0) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "%s on %s failed: TPM rc 0x%x", op.c_str(), t.proc->name().c_str(), rc);
        throw std::runtime_error(buf);
    }
}

uint32_t be32(const Bytes& b, size_t off) {
    return (uint32_t{b[off]} << 24) | (uint32_t{b[off + 1]} << 16) | (uint32_t{b[off + 2]} << 8) | b[off + 3];
}

Bytes ctrl_msg(uint32_t code, std::initializer_list<uint32_t> fields) {
    Bytes b;
    for (uint32_t v : std::initializer_list<uint32_t>{code}) for (int s = 24; s >= 0; s -= 8) b.push_back(uint8_t(v >> s));
    for (uint32_t v : fields) for (int s = 24; s >= 0; s -= 8) b.push_back(uint8_t(v >> s));
    return b;
}

void expect_ctrl_ok(const Bytes& rsp, const std::string& op, const Target& t) {
    if (be32(rsp, 0) != 0)
        throw std::runtime_error(op + " on " + t.proc->name() + " failed: result " + std::to_string(be32(rsp, 0)));
}

Bytes get_blob(Target& t, uint32_t type) {
    Bytes hdr = exchange(t.ctrl, ctrl_msg(0x0c, {1, type, 0}), 16);
    expect_ctrl_ok(hdr, "GET_STATEBLOB", t);
    return read_n(t.ctrl, be32(hdr, 8));
}

void set_blob(Target& t, uint32_t type, const Bytes& blob) {
    Bytes m = ctrl_msg(0x0d, {0, type, static_cast<uint32_t>(blob.size())});
    m.insert(m.end(), blob.begin(), blob.end());
    expect_ctrl_ok(exchange(t.ctrl, m, 4), "SET_STATEBLOB", t);
}

struct Op {
    std::string name;
    int iterations;        // per batch
    double target;         // ratio target (ours/swtpm median)
    std::function<double(Target&)> run;  // one timed iteration, returns microseconds
};

template <typename F>
double timed(F&& f) {
    auto t0 = Clock::now();
    f();
    return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

std::vector<Op> operations(bool quick) {
    auto n = [quick](int full) { return quick ? std::max(2, full / 20) : full; };
    std::vector<Op> ops;
    ops.push_back({"GetRandom(32)", n(400), 0.9, [](Target& t) {
        Bytes c = get_random(32), r;
        double us = timed([&] { r = transact(t.data, c); });
        expect_ok(r, "GetRandom", t);
        return us;
    }});
    ops.push_back({"PCR_Extend", n(400), 0.9, [](Target& t) {
        Bytes c = pcr_extend(16, ++t.counter), r;
        double us = timed([&] { r = transact(t.data, c); });
        expect_ok(r, "PCR_Extend", t);
        return us;
    }});
    ops.push_back({"PCR_Read", n(400), 1.0, [](Target& t) {
        Bytes c = pcr_read(0xff), r;
        double us = timed([&] { r = transact(t.data, c); });
        expect_ok(r, "PCR_Read", t);
        return us;
    }});
    ops.push_back({"NV_Write(32)", n(200), 0.9, [](Target& t) {
        Bytes c = nv_write(0x01500100, 32, ++t.counter), r;
        double us = timed([&] { r = transact(t.data, c); });
        expect_ok(r, "NV_Write", t);
        return us;
    }});
    ops.push_back({"CreatePrimary ECC P-256", n(60), 1.0, [](Target& t) {
        Bytes c = create_primary_ecc(++t.variant), r;
        double us = timed([&] { r = transact(t.data, c); });
        expect_ok(r, "CreatePrimary ECC", t);
        expect_ok(transact(t.data, flush_context(response_handle(r))), "FlushContext", t);
        return us;
    }});
    // Each RSA key is a new prime search whose length varies a lot: many samples.
    ops.push_back({"CreatePrimary RSA-2048", quick ? 1 : 6, 1.0, [](Target& t) {
        Bytes c = create_primary_rsa(++t.variant), r;
        double us = timed([&] { r = transact(t.data, c); });
        expect_ok(r, "CreatePrimary RSA", t);
        expect_ok(transact(t.data, flush_context(response_handle(r))), "FlushContext", t);
        return us;
    }});
    ops.push_back({"Quote (ECDSA P-256)", n(60), 1.0, [](Target& t) {
        Bytes c = quote(t.quote_key, 0xff), r;
        double us = 0;
        // TPM_RC_RETRY is a legal answer (libtpms gives it on a key's first signature): ask again.
        do { us = timed([&] { r = transact(t.data, c); }); } while (response_code(r) == TPM2_RC_RETRY);
        expect_ok(r, "Quote", t);
        return us;
    }});
    ops.push_back({"ctrl round trip (GET_CONFIG)", n(400), 1.0, [](Target& t) {
        Bytes m = ctrl_msg(0x0f, {}), r;
        double us = timed([&] { r = exchange(t.ctrl, m, 8); });
        expect_ctrl_ok(r, "GET_CONFIG", t);
        return us;
    }});
    for (uint32_t type : {1u, 2u}) {
        std::string nm = type == 1 ? "permanent" : "volatile";
        ops.push_back({"GET_STATEBLOB " + nm, n(100), 1.0, [type](Target& t) {
            Bytes b;
            double us = timed([&] { b = get_blob(t, type); });
            if (b.empty()) throw std::runtime_error("empty blob");
            return us;
        }});
    }
    for (uint32_t type : {1u, 2u}) {
        std::string nm = type == 1 ? "permanent" : "volatile";
        ops.push_back({"SET_STATEBLOB " + nm, n(40), 1.0, [type](Target& t) {
            // A restore as QEMU does it: STOP, set both blobs, INIT. Only the SET of this type is timed.
            expect_ctrl_ok(exchange(t.ctrl, ctrl_msg(0x0e, {}), 4), "STOP", t);
            double us = 0;
            for (uint32_t ty : {1u, 2u}) {
                const Bytes& blob = ty == 1 ? t.perm_blob : t.vol_blob;
                if (ty == type) us = timed([&] { set_blob(t, ty, blob); });
                else set_blob(t, ty, blob);
            }
            expect_ctrl_ok(exchange(t.ctrl, ctrl_msg(0x02, {1}), 4), "INIT", t);
            return us;
        }});
    }
    return ops;
}

void prepare(Target& t) {
    t.data = t.proc->connect_data();
    t.ctrl = t.proc->connect_ctrl();
    // An NV index for NV_Write and a signing key for Quote, outside timing.
    transact(t.data, nv_define(0x01500100, 32));  // may already exist in a reused state: ignore
    Bytes r = transact(t.data, create_primary_ecc());
    expect_ok(r, "CreatePrimary (quote key)", t);
    t.quote_key = response_handle(r);
    t.perm_blob = get_blob(t, 1);
    t.vol_blob = get_blob(t, 2);
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
    return v[i];
}

std::string fresh_dir(const char* tag) {
    std::string t = (fs::temp_directory_path() / (std::string("vtpm-bench-") + tag + "-XXXXXX")).string();
    std::vector<char> buf(t.begin(), t.end());
    buf.push_back(0);
    if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
    return buf.data();
}

// exec to first answered command, on a copy of an already manufactured state.
double cold_start(const std::string& name, const std::string& exe, const std::string& state_src, int cpu) {
    std::string dir = fresh_dir("cold");
    fs::copy_file(fs::path(state_src) / "tpm2-00.permall", fs::path(dir) / "tpm2-00.permall");
    ServerProc p(name, exe, dir, cpu);
    auto t0 = p.start();
    int fd = p.connect_data(5000);
    Bytes r = transact(fd, get_random(8));
    double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    ::close(fd);
    if (response_code(r) != 0) throw std::runtime_error("cold start: GetRandom failed on " + name);
    p.stop();
    fs::remove_all(dir);
    return us;
}

void pin_self(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

int usage() {
    std::fprintf(stderr, "usage: vtpm-bench --ours PATH [--theirs PATH] [--cpu N] [--quick] [--json FILE]\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
        if (a == "--ours") o.ours = next();
        else if (a == "--theirs") o.theirs = next();
        else if (a == "--cpu") o.cpu = std::atoi(next().c_str());
        else if (a == "--quick") o.quick = true;
        else if (a == "--json") o.json = next();
        else return usage();
    }
    if (o.ours.empty()) return usage();
    const int ncpu = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
    const int client_cpu = ncpu > 1 ? (o.cpu == 0 ? 1 : 0) : 0;
    pin_self(client_cpu);

    try {
        Target ours, theirs;
        ours.proc = std::make_unique<ServerProc>("ours", o.ours, fresh_dir("ours"), o.cpu);
        theirs.proc = std::make_unique<ServerProc>("swtpm", o.theirs, fresh_dir("swtpm"), o.cpu);
        Target* targets[] = {&ours, &theirs};
        // Both TPMs get the same seeds (ours manufactures, swtpm opens a copy of
        // that state): key derivation then does identical work on both, and
        // the copy is one more proof that swtpm reads our state files.
        ours.proc->start();
        prepare(ours);
        fs::copy_file(fs::path(ours.proc->state_dir()) / "tpm2-00.permall",
                      fs::path(theirs.proc->state_dir()) / "tpm2-00.permall");
        theirs.proc->start();
        prepare(theirs);
        const int rounds = o.quick ? 2 : 10;
        auto ops = operations(o.quick);
        for (const Op& op : ops) {
            for (Target* t : targets) op.run(*t);  // warm-up, discarded
            for (int r = 0; r < rounds; ++r) {
                // Alternate who goes first so drift hits both alike.
                Target* order[2] = {targets[r % 2], targets[1 - r % 2]};
                for (Target* t : order)
                    for (int i = 0; i < op.iterations; ++i) t->samples[op.name].push_back(op.run(*t));
            }
        }
        long rss_ours = ours.proc->rss_kb(), rss_theirs = theirs.proc->rss_kb();
        long uss_ours = ours.proc->uss_kb(), uss_theirs = theirs.proc->uss_kb();

        const int cold_n = o.quick ? 3 : 15;
        std::vector<double> cold_ours, cold_theirs;
        for (int i = 0; i < cold_n; ++i) {
            cold_ours.push_back(cold_start("ours", o.ours, ours.proc->state_dir(), o.cpu));
            cold_theirs.push_back(cold_start("swtpm", o.theirs, theirs.proc->state_dir(), o.cpu));
        }
        ours.samples["cold start (exec to first answer)"] = cold_ours;
        theirs.samples["cold start (exec to first answer)"] = cold_theirs;

        std::printf("%-34s %12s %12s %12s %12s %8s %7s  %s\n", "operation", "ours med µs", "ours p99",
                    "swtpm med µs", "swtpm p99", "ratio", "target", "");
        std::FILE* js = o.json.empty() ? nullptr : std::fopen(o.json.c_str(), "w");
        if (js) std::fprintf(js, "{\"rows\": [\n");
        bool first = true;
        auto row = [&](const std::string& name, double target) {
            auto& a = ours.samples[name];
            auto& b = theirs.samples[name];
            double ma = percentile(a, 0.5), mb = percentile(b, 0.5);
            double ratio = mb > 0 ? ma / mb : 0;
            std::printf("%-34s %12.1f %12.1f %12.1f %12.1f %8.2f %7.2f  %s\n", name.c_str(), ma, percentile(a, 0.99), mb,
                        percentile(b, 0.99), ratio, target, ratio <= target ? "PASS" : "MISS");
            if (js)
                std::fprintf(js, "%s{\"op\": \"%s\", \"ours_median_us\": %.2f, \"ours_p99_us\": %.2f, "
                                 "\"swtpm_median_us\": %.2f, \"swtpm_p99_us\": %.2f, \"ratio\": %.3f, \"target\": %.2f, "
                                 "\"samples\": %zu}",
                             first ? "" : ",\n", name.c_str(), ma, percentile(a, 0.99), mb, percentile(b, 0.99), ratio,
                             target, a.size());
            first = false;
        };
        for (const Op& op : ops) row(op.name, op.target);
        row("cold start (exec to first answer)", 0.5);
        double rr = rss_theirs > 0 ? static_cast<double>(rss_ours) / static_cast<double>(rss_theirs) : 0;
        std::printf("%-34s %12ld %12s %12ld %12s %8.2f %7.2f  %s\n", "RSS after the run (KiB)", rss_ours, "", rss_theirs,
                    "", rr, 1.0, rr <= 1.0 ? "PASS" : "MISS");
        double ur = uss_theirs > 0 ? static_cast<double>(uss_ours) / static_cast<double>(uss_theirs) : 0;
        std::printf("%-34s %12ld %12s %12ld %12s %8.2f %7s  %s\n", "private memory (USS, KiB)", uss_ours, "", uss_theirs,
                    "", ur, "-", "(info)");
        if (js) {
            std::fprintf(js, ",\n{\"op\": \"USS KiB\", \"ours\": %ld, \"swtpm\": %ld, \"ratio\": %.3f}", uss_ours,
                         uss_theirs, ur);
            std::fprintf(js, ",\n{\"op\": \"RSS KiB\", \"ours\": %ld, \"swtpm\": %ld, \"ratio\": %.3f, \"target\": 1.0}\n]}\n",
                         rss_ours, rss_theirs, rr);
            std::fclose(js);
        }
        for (Target* t : targets) {
            std::string dir = t->proc->state_dir();
            t->proc->stop();
            fs::remove_all(dir);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "vtpm-bench: %s\n", e.what());
        return 1;
    }
    return 0;
}

#include "runner.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

namespace bench {
namespace {

vtpm::Result<void> with_context(const vtpm::Result<void>& r, const std::string& context) {
    if (r) return r;
    return vtpm::make_error(r.code(), context + ": " + r.error().message);
}

// After a batch: lets a server that busy-polls after a burst go idle before
// the other one is measured on the same CPU.
void settle() { std::this_thread::sleep_for(std::chrono::milliseconds(2)); }

}  // namespace

int batch_size(const Op& op, bool quick) { return quick ? std::max(1, op.batch / 10) : op.batch; }

vtpm::Result<void> run_batch(const Op& op, Target& t, int n, bool warm_up) {
    Batch batch;
    uint64_t cpu0 = 0;
    for (int i = 0; i <= n; ++i) {
        if (auto r = op.iterate(t, warm_up || i == 0 ? nullptr : &batch); !r)
            return with_context(r, op.name + " on " + t.name());
        if (i == 0 && !warm_up) {
            auto c = t.server->cpu_ns();
            if (!c) return c.error();
            cpu0 = *c;
        }
    }
    if (warm_up) return {};
    // The server's CPU over the timed iterations, per iteration. Read once
    // the last answer arrived: what the server does after answering (going
    // back to sleep) lands in the next batch's window, for both alike.
    auto cpu1 = t.server->cpu_ns();
    if (!cpu1) return cpu1.error();
    t.cpu_us[op.name].push_back({static_cast<double>(*cpu1 - cpu0) / 1000.0 / n});
    for (auto& [series, samples] : batch) t.samples[series].push_back(std::move(samples));
    return {};
}

vtpm::Result<void> prepare(const Op& op, Target& t) {
    if (!op.prepare) return {};
    return with_context(op.prepare(t), op.name + " (preparation) on " + t.name());
}

vtpm::Result<void> measure(const Op& op, Target& a, Target& b, int rounds, bool quick) {
    const int n = batch_size(op, quick);
    Target* targets[2] = {&a, &b};
    for (Target* t : targets) {
        if (auto r = prepare(op, *t); !r) return r;
        if (auto r = run_batch(op, *t, n, true); !r) return r;
        settle();
    }
    for (int round = 0; round < rounds * op.rounds_scale; ++round) {
        for (Target* t : {targets[round % 2], targets[1 - round % 2]}) {
            if (auto r = run_batch(op, *t, n, false); !r) return r;
            settle();
        }
    }
    return {};
}

}  // namespace bench

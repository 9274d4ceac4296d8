// Manufacturing: vtpm-setup against Debian's swtpm_setup with the command
// line libvirt 9.0 uses for a new VM (EKs, EK and platform certificates,
// NV lock), each run in a fresh state directory, both pinned to one CPU.
#pragma once

#include <string>

#include "stats.hpp"
#include "vtpm/result.hpp"

namespace bench {

struct ManufactureConfig {
    std::string ours, theirs;  // vtpm-setup, swtpm_setup
    std::string work_dir;      // state directories and our CA go here
    int cpu = 1;
};

struct ManufactureSamples {
    Rounds a, b;  // ours, theirs: one single-sample round per measured round
};

/// `rounds` measured pairs, alternating who goes first, after one warm-up
/// pair (which also creates both CAs).
vtpm::Result<ManufactureSamples> measure_manufacturing(const ManufactureConfig& c, int rounds);

}  // namespace bench

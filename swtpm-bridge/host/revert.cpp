#include "host/revert.hpp"

#include <getopt.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "hostapi/client.hpp"
#include "util/uuid.hpp"

namespace vtpm::host {

namespace {

int usage() {
    std::fprintf(stderr, "usage: vtpm-host revert --vm UUID --generation G [--hostd SOCKET]\n"
                         "Lets the VM's save of generation G (the latest or one of the 16 before it) restore once\n"
                         "more. Root only; vtpm-hostd logs it.\n");
    return 2;
}

}  // namespace

int revert_main(int argc, char** argv) {
    static const struct option longopts[] = {{"vm", required_argument, nullptr, 'v'},
                                             {"generation", required_argument, nullptr, 'g'},
                                             {"hostd", required_argument, nullptr, 's'},
                                             {nullptr, 0, nullptr, 0}};
    std::string vm, gen, socket = hostapi::kDefaultSocket;
    optind = 2;
    for (int c; (c = getopt_long(argc, argv, "", longopts, nullptr)) != -1;) {
        switch (c) {
            case 'v': vm = optarg; break;
            case 'g': gen = optarg; break;
            case 's': socket = optarg; break;
            default: return usage();
        }
    }
    if (vm.empty() || gen.empty() || optind != argc) return usage();
    auto uuid = parse_uuid(vm);
    if (!uuid) return std::fprintf(stderr, "vtpm-host revert: --vm: '%s' is not a UUID\n", vm.c_str()), 1;
    char* end = nullptr;
    errno = 0;
    const unsigned long long g = std::strtoull(gen.c_str(), &end, 10);
    if (errno != 0 || gen[0] < '0' || gen[0] > '9' || *end != '\0' || g == 0)
        return std::fprintf(stderr, "vtpm-host revert: --generation: '%s' is not a generation\n", gen.c_str()), 1;
    hostapi::GenerationRequest req{};
    std::copy(uuid->begin(), uuid->end(), req.vm.begin());
    req.generation = g;
    if (auto r = hostapi::Client(socket).revert_generation(req); !r)
        return std::fprintf(stderr, "vtpm-host revert: %s\n", r.error().message.c_str()), 1;
    std::printf("VM %s: generation %llu restores once more\n", format_uuid(*uuid).c_str(), g);
    return 0;
}

}  // namespace vtpm::host

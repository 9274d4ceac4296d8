#include "manufacture.hpp"

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <vector>

#include "server.hpp"

namespace bench {

namespace {

// Run argv pinned to `cpu` with stdout/stderr to `log`; µs until it exited 0.
vtpm::Result<double> run_timed(const std::vector<std::string>& argv, int cpu, const std::string& log) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const auto t0 = std::chrono::steady_clock::now();
    const pid_t pid = fork();
    if (pid < 0) return vtpm::make_error(vtpm::rc::kFail, "fork failed");
    if (pid == 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        if (cpu >= 0) {
            CPU_SET(cpu, &set);
            sched_setaffinity(0, sizeof set, &set);
        }
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(args[0], args.data());
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {}
    const auto t1 = std::chrono::steady_clock::now();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return vtpm::make_error(vtpm::rc::kFail, argv[0] + " failed (see " + log + ")");
    return std::chrono::duration<double, std::micro>(t1 - t0).count();
}

vtpm::Result<double> once(const ManufactureConfig& c, bool ours, const std::string& config_file) {
    auto dir = TempDir::create(c.work_dir, ours ? "mfg-ours-" : "mfg-swtpm-");
    if (!dir) return dir.error();
    std::vector<std::string> argv = {ours ? c.ours : c.theirs, "--tpm2", "--tpm-state", dir->path(),
                                     "--vmid", "bench:7d4ab0a2-8a6f-4f7e-9c8e-000000000001",
                                     "--createek", "--create-ek-cert", "--create-platform-cert",
                                     "--lock-nvram", "--not-overwrite"};
    // Each tool gets a private configuration: Debian's swtpm_setup would
    // otherwise create its CA in the shared /var/lib/swtpm-localca.
    argv.insert(argv.end(), {"--config", ours ? config_file : c.work_dir + "/swtpm_setup.conf"});
    return run_timed(argv, c.cpu, c.work_dir + (ours ? "/mfg-ours.log" : "/mfg-swtpm.log"));
}

}  // namespace

vtpm::Result<ManufactureSamples> measure_manufacturing(const ManufactureConfig& c, int rounds) {
    const std::string config_file = c.work_dir + "/vtpm-setup.conf";
    {
        std::ofstream f(config_file);
        f << "localca_dir = " << c.work_dir << "/localca\n";
        if (!f) return vtpm::make_error(vtpm::rc::kFail, "cannot write " + config_file);
    }
    {
        // Debian's settings (/etc/swtpm_setup.conf, /etc/swtpm-localca.*),
        // with the CA's state in the work directory.
        const std::string ca = c.work_dir + "/swtpm-localca";
        std::filesystem::create_directories(ca);
        std::ofstream l(c.work_dir + "/swtpm-localca.conf");
        l << "statedir = " << ca << "\nsigningkey = " << ca << "/signkey.pem\nissuercert = " << ca
          << "/issuercert.pem\ncertserial = " << ca << "/certserial\n";
        std::ofstream o(c.work_dir + "/swtpm-localca.options");
        o << "--platform-manufacturer Fedora\n--platform-version 2.1\n--platform-model QEMU\n";
        std::ofstream f(c.work_dir + "/swtpm_setup.conf");
        f << "create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = " << c.work_dir
          << "/swtpm-localca.conf\ncreate_certs_tool_options = " << c.work_dir
          << "/swtpm-localca.options\nactive_pcr_banks = sha256\n";
        if (!l || !o || !f) return vtpm::make_error(vtpm::rc::kFail, "cannot write swtpm_setup's configuration");
    }
    ManufactureSamples out;
    for (int round = 0; round <= rounds; ++round) {
        for (int k = 0; k < 2; ++k) {
            const bool ours = (round + k) % 2 == 0;
            auto us = once(c, ours, config_file);
            if (!us) return vtpm::make_error(us.code(), std::string("manufacturing with ") +
                                                           (ours ? c.ours : c.theirs) + ": " + us.error().message);
            if (round > 0) (ours ? out.a : out.b).push_back({*us});
        }
    }
    return out;
}

}  // namespace bench

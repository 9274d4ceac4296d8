#include "server.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "net.hpp"

namespace bench {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

vtpm::Error sys_error(const std::string& what) {
    return vtpm::make_error(vtpm::rc::kFail, what + ": " + std::strerror(errno));
}

// In the child, between fork and exec: pin, redirect, exec. Only
// async-signal-safe calls; a failure is written to the log and ends the child.
[[noreturn]] void exec_child(const std::vector<char*>& argv, const char* log_path, int cpu) {
    int log = ::open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log >= 0) {
        ::dup2(log, STDOUT_FILENO);
        ::dup2(log, STDERR_FILENO);
    }
    if (null >= 0) ::dup2(null, STDIN_FILENO);
    cpu_set_t set;
    CPU_ZERO(&set);
    if (cpu >= 0) CPU_SET(cpu, &set);
    if (cpu >= 0 && ::sched_setaffinity(0, sizeof set, &set) != 0) {
        static const char msg[] = "vtpm-bench: sched_setaffinity failed in the child\n";
        [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
        ::_exit(126);
    }
    ::execv(argv[0], argv.data());
    static const char msg[] = "vtpm-bench: execv failed\n";
    [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    ::_exit(127);
}

}  // namespace

vtpm::Result<uint64_t> Server::cpu_ns() const {
    const std::string dir = "/proc/" + std::to_string(pid_) + "/task";
    std::error_code ec;
    uint64_t total = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
        std::ifstream in(e.path() / "schedstat");
        uint64_t ns = 0;
        if (in >> ns) total += ns;
    }
    if (ec) return vtpm::make_error(vtpm::rc::kFail, "cannot read " + dir + ": " + ec.message());
    return total;
}

vtpm::Result<Clock::time_point> Server::start() {
    auto port = free_port_pair();
    if (!port) return port.error();
    port_ = *port;
    std::vector<std::string> args = {config_.exe,
                                     "socket",
                                     "--tpm2",
                                     "--tpmstate",
                                     "dir=" + config_.state_dir,
                                     "--server",
                                     "type=tcp,port=" + std::to_string(port_),
                                     "--ctrl",
                                     "type=tcp,port=" + std::to_string(port_ + 1),
                                     "--flags",
                                     "not-need-init,startup-clear"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    exited_ = stopping_ = death_reported_ = false;
    const Clock::time_point t0 = Clock::now();
    pid_ = ::fork();
    if (pid_ < 0) return sys_error("fork");
    if (pid_ == 0) exec_child(argv, config_.log_path.c_str(), config_.cpu);
    return t0;
}

bool Server::alive() {
    if (pid_ <= 0) return false;
    pid_t r = ::waitpid(pid_, &wait_status_, WNOHANG);
    if (r == pid_) {
        exited_ = true;
        pid_ = -1;
        return false;
    }
    return true;
}

bool Server::died() {
    alive();
    return exited_ && !stopping_;
}

void Server::stop() {
    if (!alive()) return;
    stopping_ = true;
    ::kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    while (Clock::now() < deadline) {
        if (!alive()) return;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &wait_status_, 0);
    exited_ = true;
    pid_ = -1;
}

vtpm::Result<vtpm::UniqueFd> Server::connect(uint16_t port, std::chrono::milliseconds patience) {
    auto fd = connect_retry(port, Clock::now() + patience, [this] { return alive(); });
    if (fd) return fd;
    return vtpm::make_error(fd.error().code, name() + ": " + fd.error().message + death_note());
}

std::string Server::death_note() {
    if (!died() || death_reported_) return "";
    death_reported_ = true;
    return " (" + name() + ": " + exit_description() + "); its log ends with:\n" + log_tail();
}

vtpm::Result<vtpm::UniqueFd> Server::connect_data(std::chrono::milliseconds patience) {
    return connect(port_, patience);
}

vtpm::Result<vtpm::UniqueFd> Server::connect_ctrl(std::chrono::milliseconds patience) {
    return connect(static_cast<uint16_t>(port_ + 1), patience);
}

vtpm::Result<long> Server::status_kb(const char* field) const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    const std::string prefix = std::string(field) + ":";
    for (std::string line; std::getline(in, line);)
        if (line.rfind(prefix, 0) == 0) return std::strtol(line.c_str() + prefix.size(), nullptr, 10);
    return vtpm::make_error(vtpm::rc::kFail,
                            "no " + prefix + " in /proc/" + std::to_string(pid_) + "/status of " + name());
}

vtpm::Result<long> Server::private_kb() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/smaps_rollup");
    long kb = 0;
    bool found = false;
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("Private_Clean:", 0) == 0 || line.rfind("Private_Dirty:", 0) == 0) {
            kb += std::strtol(line.c_str() + line.find(':') + 1, nullptr, 10);
            found = true;
        }
    }
    if (!found) return vtpm::make_error(vtpm::rc::kFail, "no smaps_rollup for " + name());
    return kb;
}

vtpm::Result<std::map<std::string, long>> Server::file_rss_kb() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/smaps");
    if (!in) return vtpm::make_error(vtpm::rc::kFail, "no smaps for " + name());
    std::map<std::string, long> kb;
    std::string path;  // the file of the mapping whose fields follow; "" for anonymous ones
    for (std::string line; std::getline(in, line);) {
        // A mapping's header: "start-end perms offset dev inode [path]".
        if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') < line.find(' ')) {
            const size_t slash = line.find('/');
            path = slash == std::string::npos ? "" : line.substr(slash);
        } else if (!path.empty() && line.rfind("Rss:", 0) == 0) {
            kb[path] += std::strtol(line.c_str() + 4, nullptr, 10);
        }
    }
    return kb;
}

std::string Server::exit_description() const {
    if (!exited_) return "running";
    if (WIFEXITED(wait_status_)) return "exit status " + std::to_string(WEXITSTATUS(wait_status_));
    if (WIFSIGNALED(wait_status_)) return "killed by signal " + std::to_string(WTERMSIG(wait_status_));
    return "ended";
}

std::string Server::log_tail() const {
    std::ifstream in(config_.log_path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) {
        lines.push_back(line);
        if (lines.size() > 8) lines.erase(lines.begin());
    }
    std::string out;
    for (const std::string& l : lines) out += "    | " + l + "\n";
    return out;
}

vtpm::Result<TempDir> TempDir::create(const std::string& parent, const std::string& prefix) {
    std::string templ = (fs::path(parent) / (prefix + "XXXXXX")).string();
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) return sys_error("mkdtemp " + templ);
    return TempDir(std::string(buf.data()));
}

TempDir::~TempDir() {
    if (path_.empty()) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
}

vtpm::Result<void> copy_into(const std::string& file, const std::string& dir) {
    std::error_code ec;
    fs::copy_file(file, fs::path(dir) / fs::path(file).filename(), fs::copy_options::overwrite_existing, ec);
    if (ec) return vtpm::make_error(vtpm::rc::kFail, "copy " + file + " to " + dir + ": " + ec.message());
    return {};
}

}  // namespace bench

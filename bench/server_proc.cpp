#include "server_proc.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace bench {
namespace {

int try_connect(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return fd;
    }
    ::close(fd);
    return -1;
}

int connect_retry(uint16_t port, int deadline_ms) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(deadline_ms);
    while (std::chrono::steady_clock::now() < end) {
        int fd = try_connect(port);
        if (fd >= 0) return fd;
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    throw std::runtime_error("could not connect to port " + std::to_string(port));
}

}  // namespace

uint16_t free_port_pair() {
    for (int i = 0; i < 100; ++i) {
        int a = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in s{};
        s.sin_family = AF_INET;
        s.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(a, reinterpret_cast<sockaddr*>(&s), sizeof s);
        socklen_t l = sizeof s;
        ::getsockname(a, reinterpret_cast<sockaddr*>(&s), &l);
        uint16_t p = ntohs(s.sin_port);
        int b = ::socket(AF_INET, SOCK_STREAM, 0);
        s.sin_port = htons(static_cast<uint16_t>(p + 1));
        bool ok = p < 65535 && ::bind(b, reinterpret_cast<sockaddr*>(&s), sizeof s) == 0;
        ::close(a);
        ::close(b);
        if (ok) return p;
    }
    throw std::runtime_error("no free ports");
}

ServerProc::ServerProc(std::string name, std::string exe, std::string state_dir, int cpu)
    : name_(std::move(name)), exe_(std::move(exe)), state_dir_(std::move(state_dir)), cpu_(cpu),
      port_(free_port_pair()) {}

ServerProc::~ServerProc() { stop(); }

std::chrono::steady_clock::time_point ServerProc::start() {
    std::vector<std::string> args = {exe_, "socket", "--tpm2", "--tpmstate", "dir=" + state_dir_,
                                     "--server", "type=tcp,port=" + std::to_string(port_),
                                     "--ctrl", "type=tcp,port=" + std::to_string(port_ + 1),
                                     "--flags", "not-need-init,startup-clear", "--log", "file=-"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    auto t0 = std::chrono::steady_clock::now();
    pid_ = ::fork();
    if (pid_ == 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu_, &set);
        ::sched_setaffinity(0, sizeof set, &set);
        int null = ::open("/dev/null", O_RDWR);
        ::dup2(null, 1);
        ::dup2(null, 2);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    return t0;
}

void ServerProc::stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int st = 0;
    for (int i = 0; i < 500; ++i) {
        if (::waitpid(pid_, &st, WNOHANG) == pid_) {
            pid_ = -1;
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
}

int ServerProc::connect_data(int deadline_ms) const { return connect_retry(port_, deadline_ms); }
int ServerProc::connect_ctrl(int deadline_ms) const { return connect_retry(static_cast<uint16_t>(port_ + 1), deadline_ms); }

long ServerProc::rss_kb() const {
    std::ifstream f("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
    return -1;
}

long ServerProc::uss_kb() const {
    std::ifstream f("/proc/" + std::to_string(pid_) + "/smaps_rollup");
    std::string line;
    long kb = 0;
    while (std::getline(f, line))
        if (line.rfind("Private_Clean:", 0) == 0 || line.rfind("Private_Dirty:", 0) == 0)
            kb += std::strtol(line.c_str() + line.find(':') + 1, nullptr, 10);
    return kb;
}

Bytes read_n(int fd, size_t n) {
    Bytes b(n);
    size_t off = 0;
    while (off < n) {
        ssize_t r = ::read(fd, b.data() + off, n - off);
        if (r <= 0) throw std::runtime_error("connection closed");
        off += static_cast<size_t>(r);
    }
    return b;
}

Bytes exchange(int fd, const Bytes& msg, size_t n) {
    if (::write(fd, msg.data(), msg.size()) != static_cast<ssize_t>(msg.size())) throw std::runtime_error("write failed");
    return read_n(fd, n);
}

Bytes transact(int fd, const Bytes& cmd) {
    Bytes hdr = exchange(fd, cmd, 10);
    uint32_t size = (uint32_t{hdr[2]} << 24) | (uint32_t{hdr[3]} << 16) | (uint32_t{hdr[4]} << 8) | hdr[5];
    if (size < 10 || size > 8192) throw std::runtime_error("bad response size");
    Bytes rest = read_n(fd, size - 10);
    hdr.insert(hdr.end(), rest.begin(), rest.end());
    return hdr;
}

}  // namespace bench

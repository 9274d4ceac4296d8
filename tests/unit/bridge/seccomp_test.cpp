// The bridge's seccomp filter is an allow-list: loaded into a forked child,
// the calls the bridge makes go through and anything else kills the child.
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <thread>

#include "bridge/seccomp_policy.hpp"

using namespace vtpm::bridge;

namespace {

// Run `body` in a child under the "kill" filter; the wait status. The child
// reports with its exit code only (no test framework calls after the filter).
int filtered(const std::function<int()>& body) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        if (!load_seccomp_filter("kill")) ::_exit(100);
        ::_exit(body());
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return status;
}

bool killed_by_seccomp(int status) { return WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS; }

bool exited_ok(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

}  // namespace

TEST_CASE("seccomp: what the bridge does after the filter goes through") {
    int status = filtered([] {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0 || ::write(fds[1], "x", 1) != 1) return 1;
        ::close(fds[0]);
        ::close(fds[1]);
        int u = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);  // vtpm-hostd's client
        if (u < 0) return 2;
        ::close(u);
        void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED || ::mlock(p, 4096) != 0 || ::munlock(p, 4096) != 0 || ::munmap(p, 4096) != 0) return 3;
        int ran = 0;
        std::thread th([&] { ran = 1; });  // clone3 refused with ENOSYS, clone with CLONE_THREAD
        th.join();
        if (!ran) return 4;
        if (::syscall(SYS_clone3, nullptr, 0) != -1 || errno != ENOSYS) return 5;
        if (::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) < 0) return 6;
        return 0;
    });
    INFO("wait status " << status);
    CHECK(exited_ok(status));
}

TEST_CASE("seccomp: calls off the list kill the process") {
    CHECK(killed_by_seccomp(filtered([] {
        char* const argv[] = {const_cast<char*>("true"), nullptr};
        ::execve("/bin/true", argv, nullptr);
        return 0;
    })));
    CHECK(killed_by_seccomp(filtered([] { return static_cast<int>(::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr)); })));
    CHECK(killed_by_seccomp(filtered([] { return ::socket(AF_INET, SOCK_STREAM, 0) < 0 ? 1 : 0; })));
    CHECK(killed_by_seccomp(filtered([] { return ::socket(AF_INET6, SOCK_RAW, IPPROTO_RAW) < 0 ? 1 : 0; })));
    CHECK(killed_by_seccomp(filtered([] { return ::socket(AF_NETLINK, SOCK_RAW, 0) < 0 ? 1 : 0; })));
    CHECK(killed_by_seccomp(filtered([] { return ::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0); })));
    CHECK(killed_by_seccomp(filtered([] { return static_cast<int>(::syscall(SYS_getppid)); })));
    // A new process (clone without CLONE_THREAD).
    CHECK(killed_by_seccomp(filtered([] { return static_cast<int>(::syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0)); })));
}

TEST_CASE("seccomp: unknown actions are refused") {
    CHECK_FALSE(load_seccomp_filter("fry").ok());
}

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "../temp_dir.hpp"
#include "util/durable_file.hpp"

using namespace vtpm;

namespace {

struct stat stat_of(const std::string& path) {
    struct stat st{};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st;
}

std::string make_file(const TempDir& dir, mode_t mode) {
    const std::string path = (dir.path / "state").string();
    std::ofstream(path) << "abc";
    REQUIRE(::chmod(path.c_str(), mode) == 0);
    return path;
}

}  // namespace

TEST_CASE("read_whole_file gives the file the mode it is asked for, as swtpm does with state files") {
    TempDir dir;
    const std::string path = make_file(dir, 0600);
    auto data = read_whole_file(path, 0640);
    REQUIRE(data);
    CHECK(std::string(data->begin(), data->end()) == "abc");
    CHECK((stat_of(path).st_mode & 07777) == 0640);
}

TEST_CASE("read_whole_file leaves a file that has the mode alone: no ctime change, no dirty inode") {
    TempDir dir;
    const std::string path = make_file(dir, 0640);
    const struct stat before = stat_of(path);
    // Past the kernel's coarse timestamp tick, so a chmod would show.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    REQUIRE(read_whole_file(path, 0640));
    const struct stat after = stat_of(path);
    CHECK(after.st_ctim.tv_sec == before.st_ctim.tv_sec);
    CHECK(after.st_ctim.tv_nsec == before.st_ctim.tv_nsec);
}

TEST_CASE("read_whole_file refuses what is not a regular file before touching its mode") {
    TempDir dir;
    const std::string sub = (dir.path / "d").string();
    REQUIRE(::mkdir(sub.c_str(), 0700) == 0);
    auto r = read_whole_file(sub, 0640);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("not a regular file") != std::string::npos);
    CHECK((stat_of(sub).st_mode & 07777) == 0700);
}

TEST_CASE("read_whole_file: a missing file is kRetry") {
    TempDir dir;
    auto r = read_whole_file((dir.path / "none").string(), 0640);
    REQUIRE_FALSE(r);
    CHECK(r.code() == rc::kRetry);
}

// HOSTDIR/vms/UUID.ek: a VM's first EK key of each family is bound, the same
// key again changes nothing, another key is refused unless an operator
// re-manufactures; the file round-trips and refuses edits it does not know.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <fstream>

#include "../temp_dir.hpp"
#include "hoststate/ek_bindings.hpp"

using namespace vtpm;
using namespace vtpm::hoststate;

namespace {

constexpr const char* kVm = "3f0d9a4e-5b6c-4d7e-8f90-a1b2c3d4e5f6";

Digest digest_of(uint8_t b) {
    Digest d{};
    d.fill(b);
    return d;
}

}  // namespace

TEST_CASE("an EK key is bound once per family; another key needs an operator") {
    EkBinding b;
    auto c = bind_ek(b, EkFamily::Rsa, digest_of(1), false, kVm);
    REQUIRE(c);
    CHECK(*c == EkBindingChange::Bound);
    CHECK(bind_ek(b, EkFamily::Ec, digest_of(2), false, kVm).value() == EkBindingChange::Bound);
    CHECK(bind_ek(b, EkFamily::Rsa, digest_of(1), false, kVm).value() == EkBindingChange::Unchanged);
    const EkBinding before = b;
    auto refused = bind_ek(b, EkFamily::Rsa, digest_of(3), false, kVm);
    REQUIRE(!refused);
    CHECK(refused.error().message.find("VM " + std::string(kVm) + " already has an RSA EK") != std::string::npos);
    CHECK(refused.error().message.find("re-manufacturing needs root") != std::string::npos);
    CHECK(b == before);
    CHECK(!bind_ek(b, EkFamily::Ec, digest_of(3), false, kVm));
    CHECK(bind_ek(b, EkFamily::Rsa, digest_of(3), true, kVm).value() == EkBindingChange::Replaced);
    CHECK(b.rsa == digest_of(3));
    CHECK(b.ec == digest_of(2));
}

TEST_CASE("the EK binding file round-trips, is 0600, and refuses what it does not know") {
    TempDir dir;
    auto none = read_ek_binding(dir.path.string(), kVm);
    REQUIRE(none);
    CHECK(*none == EkBinding{});
    EkBinding b;
    b.rsa = digest_of(0xab);
    REQUIRE(write_ek_binding(dir.path.string(), kVm, b));
    const auto path = dir.path / "vms" / (std::string(kVm) + ".ek");
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    auto back = read_ek_binding(dir.path.string(), kVm);
    REQUIRE(back);
    CHECK(*back == b);
    b.ec = digest_of(0xcd);
    REQUIRE(write_ek_binding(dir.path.string(), kVm, b));
    CHECK(read_ek_binding(dir.path.string(), kVm).value() == b);

    const std::string text = format_ek_binding(kVm, b);
    CHECK(parse_ek_binding(text, kVm).value() == b);
    CHECK(!parse_ek_binding(text, "00000000-0000-0000-0000-000000000000"));
    CHECK(!parse_ek_binding(text + "rsa_ek_spki_sha256 = " + std::string(64, '0') + "\n", kVm));
    CHECK(!parse_ek_binding(text + "other = 1\n", kVm));
    CHECK(!parse_ek_binding("vm_uuid = " + std::string(kVm) + "\nrsa_ek_spki_sha256 = abcd\n", kVm));
    CHECK(!parse_ek_binding("rsa_ek_spki_sha256 = " + std::string(64, '0') + "\n", kVm));
    CHECK(!parse_ek_binding(text + "vm_uuid = " + std::string(kVm) + "\n", kVm));  // said twice
    CHECK(!parse_ek_binding(text + "no equals sign\n", kVm));
    std::ofstream(path) << "garbage\n";
    auto bad = read_ek_binding(dir.path.string(), kVm);
    REQUIRE(!bad);
    CHECK(bad.error().message.find(path.string()) != std::string::npos);
}

// EK bindings: a VM's first EK key of each family is bound, the same key
// again changes nothing, another key is refused unless an operator
// re-manufactures; older versions' HOSTDIR/vms/UUID.ek files are read back
// (for the ledger to take in) and refused whole when damaged.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <vector>

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

TEST_CASE("older versions' EK binding files are read back for the ledger, and refused when damaged") {
    TempDir dir;
    auto none = read_ek_files(ek_file_paths(dir.path.string()));
    REQUIRE(none);
    CHECK(none->empty());
    CHECK(ek_file_paths(dir.path.string()).empty());
    std::filesystem::create_directories(dir.path / "vms");
    EkBinding b;
    b.rsa = digest_of(0xab);
    b.ec = digest_of(0xcd);
    const auto path = dir.path / "vms" / (std::string(kVm) + ".ek");
    std::ofstream(path) << format_ek_binding(kVm, b);
    std::ofstream(dir.path / "vms" / (std::string(kVm) + ".record")) << "not an EK binding\n";
    auto back = read_ek_files(ek_file_paths(dir.path.string()));
    REQUIRE(back);
    REQUIRE(back->size() == 1);
    CHECK(back->at(kVm) == b);
    CHECK(ek_file_paths(dir.path.string()) == std::vector<std::string>{path.string()});

    const std::string text = format_ek_binding(kVm, b);
    CHECK(parse_ek_binding(text, kVm).value() == b);
    CHECK(!parse_ek_binding(text, "00000000-0000-0000-0000-000000000000"));
    CHECK(!parse_ek_binding(text + "rsa_ek_spki_sha256 = " + std::string(64, '0') + "\n", kVm));
    CHECK(!parse_ek_binding(text + "other = 1\n", kVm));
    CHECK(!parse_ek_binding("vm_uuid = " + std::string(kVm) + "\nrsa_ek_spki_sha256 = abcd\n", kVm));
    CHECK(!parse_ek_binding("rsa_ek_spki_sha256 = " + std::string(64, '0') + "\n", kVm));
    CHECK(!parse_ek_binding(text + "vm_uuid = " + std::string(kVm) + "\n", kVm));  // said twice
    CHECK(!parse_ek_binding(text + "no equals sign\n", kVm));
    // A file for another VM than its name says, a damaged one, a bad name: refused, named.
    const std::string other = "0f0d9a4e-5b6c-4d7e-8f90-a1b2c3d4e5f6";
    std::ofstream(dir.path / "vms" / (other + ".ek")) << text;
    auto swapped = read_ek_files(ek_file_paths(dir.path.string()));
    REQUIRE(!swapped);
    CHECK(swapped.error().message.find(other + ".ek: ") != std::string::npos);
    CHECK(swapped.error().message.find("belongs to VM " + std::string(kVm)) != std::string::npos);
    std::filesystem::remove(dir.path / "vms" / (other + ".ek"));
    std::ofstream(path) << "garbage\n";
    auto bad = read_ek_files(ek_file_paths(dir.path.string()));
    REQUIRE(!bad);
    CHECK(bad.error().message.find(path.string()) != std::string::npos);
    std::filesystem::remove(path);
    std::ofstream(dir.path / "vms" / "vm1.ek") << text;
    auto named = read_ek_files(ek_file_paths(dir.path.string()));
    REQUIRE(!named);
    CHECK(named.error().message.find("vm1.ek: the name is not a VM UUID") != std::string::npos);
}

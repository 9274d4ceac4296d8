// Golden state written by Debian's swtpm 0.7.1 (tests/data/make-fixtures.sh):
// every version of libvtpm must keep reading it.
#include <catch2/catch.hpp>

#include <fstream>
#include <string>

#include "store/key.hpp"
#include "store/state_file.hpp"

using namespace vtpm;
using namespace vtpm::store;

namespace {

Bytes fixture(const std::string& name) {
    std::ifstream f(std::string(VTPM_FIXTURES) + "/" + name, std::ios::binary);
    REQUIRE(f.good());
    return Bytes(std::istreambuf_iterator<char>(f), {});
}

Key hex_key(const std::string& file) {
    Bytes b = fixture(file);
    auto k = parse_hex_key(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), 32);
    REQUIRE(k.ok());
    return std::move(*k);
}

// libtpms TPM 2 blobs start with an NV header: u16 version, u32 magic.
uint32_t magic(const SecureBytes& b) { return b.size() >= 6 ? load_be32(b.data() + 2) : 0; }
constexpr uint32_t kPermallMagic = 0xab364723, kVolatileMagic = 0x45637889;

}  // namespace

TEST_CASE("fixtures: plain TPM 2 state files of swtpm 0.7.1") {
    auto p = decode_state_file(fixture("plain.tpm2-00.permall"), nullptr);
    REQUIRE(p.ok());
    CHECK(magic(*p) == kPermallMagic);
    auto v = decode_state_file(fixture("plain.tpm2-00.volatilestate"), nullptr);
    REQUIRE(v.ok());
    CHECK(magic(*v) == kVolatileMagic);
    // Re-encoding the plain blob gives swtpm's file byte for byte (no key: deterministic).
    auto again = encode_state_file(*p, nullptr);
    REQUIRE(again.ok());
    CHECK(*again == fixture("plain.tpm2-00.permall"));
}

TEST_CASE("fixtures: encrypted with a key file and with a passphrase") {
    Key k = hex_key("key.hex");
    Bytes file = fixture("keyfile.tpm2-00.permall");
    CHECK(load_be16(file.data() + 4) == 0x0009);
    auto p = decode_state_file(file, &k);
    REQUIRE(p.ok());
    CHECK(magic(*p) == kPermallMagic);
    CHECK_FALSE(decode_state_file(file, nullptr).ok());

    Bytes pw = fixture("passphrase");
    auto pk = derive_key_pbkdf2(pw, 32);
    REQUIRE(pk.ok());
    auto q = decode_state_file(fixture("pwdfile.tpm2-00.permall"), &*pk);
    REQUIRE(q.ok());
    CHECK(magic(*q) == kPermallMagic);
    auto qv = decode_state_file(fixture("pwdfile.tpm2-00.volatilestate"), &*pk);
    REQUIRE(qv.ok());
    CHECK(magic(*qv) == kVolatileMagic);
    CHECK(decode_state_file(fixture("pwdfile.tpm2-00.permall"), &k).code() == rc::kDecryptError);

    // Ours encrypts so that our decoder (and swtpm, see the interop test) reads it back.
    auto enc = encode_state_file(*q, &*pk);
    REQUIRE(enc.ok());
    auto back = decode_state_file(*enc, &*pk);
    REQUIRE(back.ok());
    CHECK(back->size() == q->size());
}

TEST_CASE("fixtures: migration blobs from CMD_GET_STATEBLOB") {
    auto p = decode_migration_blob(fixture("plain.permanent.blob"), 0, nullptr, nullptr);
    REQUIRE(p.ok());
    CHECK(magic(*p) == kPermallMagic);
    Key mk = hex_key("migkey.hex");
    Bytes blob = fixture("migkey.permanent.blob");
    CHECK((load_be16(blob.data() + 4) & 0x12) == 0x12);
    auto m = decode_migration_blob(blob, 0, nullptr, &mk);
    REQUIRE(m.ok());
    CHECK(magic(*m) == kPermallMagic);
    CHECK(decode_migration_blob(blob, 0, nullptr, nullptr).code() == rc::kKeyNotFound);
    Key wrong = hex_key("key.hex");
    CHECK(decode_migration_blob(blob, 0, nullptr, &wrong).code() == rc::kDecryptError);
}

TEST_CASE("fixtures: TPM 1.2 state") {
    auto p = decode_state_file(fixture("tpm12.tpm-00.permall"), nullptr);
    REQUIRE(p.ok());
    CHECK(p->size() > 1000);
    CHECK(decode_migration_blob(fixture("tpm12.permanent.blob"), 0, nullptr, nullptr).ok());
}

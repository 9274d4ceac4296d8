// What vtpm-hostd certifies as a vTPM's EK or platform certificate: the key
// (RSA >= 2048 bits, EC P-256/P-384), the subject fields, the validity, and
// which VM a subject names.
#include <catch2/catch.hpp>

#include <openssl/evp.h>

#include <cstdint>

#include "issuance/ek_policy.hpp"
#include "util/ossl.hpp"

using namespace vtpm;
using namespace vtpm::issuance;

namespace {

constexpr const char* kVm = "3f0d9a4e-5b6c-4d7e-8f90-a1b2c3d4e5f6";

PkeyPtr rsa(size_t bits) { return PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits)); }
PkeyPtr ec(const char* curve) { return PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve)); }

hostapi::TcgCertRequest good_request() {
    hostapi::TcgCertRequest r;
    r.kind = 0;
    r.subject_cn = std::string("vm1:") + kVm;
    r.tpm_manufacturer = "id:00001014";
    r.tpm_model = "swtpm";
    r.tpm_version = "id:20191023";
    r.spec_family = "2.0";
    r.platform_manufacturer = "libvtpm";
    r.platform_model = "libvtpm vTPM";
    r.platform_version = "0.1";
    r.days = -1;
    return r;
}

std::string refusal(const hostapi::TcgCertRequest& r, EVP_PKEY* key) {
    auto c = check_tcg_cert_request(r, key);
    return c ? std::string("accepted") : c.error().message;
}

}  // namespace

TEST_CASE("EK keys: RSA of at least 2048 bits, EC on P-256 or P-384") {
    auto r2048 = rsa(2048);
    REQUIRE(r2048);
    CHECK(ek_key_family(r2048.get()).value() == hoststate::EkFamily::Rsa);
    CHECK(ek_key_family(ec("P-256").get()).value() == hoststate::EkFamily::Ec);
    CHECK(ek_key_family(ec("P-384").get()).value() == hoststate::EkFamily::Ec);
    auto r512 = rsa(512);
    REQUIRE(r512);
    auto weak = ek_key_family(r512.get());
    REQUIRE(!weak);
    CHECK(weak.error().message.find("512 bits is refused") != std::string::npos);
    CHECK(!ek_key_family(rsa(1024).get()));
    CHECK(!ek_key_family(ec("P-521").get()));
    CHECK(!ek_key_family(ec("secp256k1").get()));
    PkeyPtr ed(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    CHECK(!ek_key_family(ed.get()));
    // The digest is of the DER SubjectPublicKeyInfo: one per key.
    CHECK(spki_digest(r2048.get()).value() == spki_digest(r2048.get()).value());
    CHECK(spki_digest(r2048.get()).value() != spki_digest(r512.get()).value());
}

TEST_CASE("IssueTcgCert fields: subject and kind's fields non-empty, no control characters, sane validity") {
    auto key = ec("P-256");
    REQUIRE(key);
    CHECK(refusal(good_request(), key.get()) == "accepted");
    auto r = good_request();
    r.days = 7300;
    CHECK(refusal(r, key.get()) == "accepted");
    CHECK(refusal(r, rsa(512).get()).find("512 bits") != std::string::npos);
    for (int32_t days : {0, -2, 36501, INT32_MIN, INT32_MAX}) {
        r.days = days;
        CHECK(refusal(r, key.get()).find("days is refused") != std::string::npos);
    }
    r = good_request();
    r.subject_cn.clear();
    CHECK(refusal(r, key.get()) == "the subject CN is empty");
    r.subject_cn = std::string("vm1\0:", 5) + kVm;
    CHECK(refusal(r, key.get()) == "the subject CN holds a NUL or control character");
    r.subject_cn = "vm1\n";
    CHECK(refusal(r, key.get()).find("control character") != std::string::npos);
    r.subject_cn = std::string(300, 'a');
    CHECK(refusal(r, key.get()).find("longer than") != std::string::npos);
    r = good_request();
    r.tpm_model.clear();
    CHECK(refusal(r, key.get()) == "the TPM model is empty");
    r.kind = 1;  // a platform certificate names the platform, not the TPM
    CHECK(refusal(r, key.get()) == "accepted");
    r.platform_version.clear();
    CHECK(refusal(r, key.get()) == "the platform version is empty");
    r = good_request();
    r.platform_model = "x\x7f";
    CHECK(refusal(r, key.get()).find("control character") != std::string::npos);
}

TEST_CASE("the VM a subject names") {
    CHECK(vm_uuid_in(std::string("vm1:") + kVm).value() == kVm);
    CHECK(vm_uuid_in("vm1:3F0D9A4E-5B6C-4D7E-8F90-A1B2C3D4E5F6").value() == kVm);
    CHECK(vm_uuid_in("unknown").value() == std::nullopt);
    CHECK(vm_uuid_in(std::string(kVm) + ":" + kVm).value() == kVm);
    auto two = vm_uuid_in(std::string(kVm) + ":00000000-0000-0000-0000-000000000000");
    REQUIRE(!two);
    CHECK(two.error().message.find("two VM UUIDs") != std::string::npos);
}

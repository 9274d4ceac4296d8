// Certificates: DER encodings, the local CA, EK/platform certificates with
// the TCG fields, and chain checks that must fail on tampering.
#include <catch2/catch.hpp>

#include <openssl/evp.h>

#include "x509/cert_check.hpp"
#include "x509/der.hpp"
#include "x509/local_ca.hpp"
#include "x509/tcg_cert.hpp"
#include "temp_dir.hpp"

using namespace vtpm;
using namespace vtpm::x509;

namespace {

PkeyPtr ec_key() { return PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")); }

CertRequest ek_request(EVP_PKEY* key) {
    CertRequest r;
    r.kind = CertKind::Ek;
    r.subject_key = key;
    r.subject_cn = "vm1:0f6d3f3c-0000-4000-8000-000000000001";
    r.tpm = {"id:00001014", "swtpm", "id:20191023"};
    r.spec = {"2.0", 0, 164};
    return r;
}

}  // namespace

TEST_CASE("DER encodings of the TCG extension building blocks") {
    CHECK(*der::oid("2.23.133.2.16") == Bytes{0x06, 0x05, 0x67, 0x81, 0x05, 0x02, 0x10});
    CHECK(*der::oid("1.2.840.113549") == Bytes{0x06, 0x06, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d});
    CHECK(der::integer(0) == Bytes{0x02, 0x01, 0x00});
    CHECK(der::integer(128) == Bytes{0x02, 0x02, 0x00, 0x80});
    CHECK(der::integer(164) == Bytes{0x02, 0x02, 0x00, 0xa4});
    CHECK(der::utf8("2.0") == Bytes{0x0c, 0x03, '2', '.', '0'});
    Bytes long_body(200, 0x11);
    auto seq = der::sequence(long_body);
    CHECK(seq[0] == 0x30);
    CHECK(seq[1] == 0x81);
    CHECK(seq[2] == 200);
    CHECK_FALSE(der::oid("2"));
    CHECK_FALSE(der::oid("1.40"));
    CHECK_FALSE(der::oid("1.2."));
    CHECK_FALSE(der::oid("a.b"));
}

TEST_CASE("the local CA is created once and reopened with the same issuer") {
    TempDir d;
    const std::string dir = (d.path / "ca").string();
    auto a = LocalCa::open(dir);
    REQUIRE(a);
    auto b = LocalCa::open(dir);
    REQUIRE(b);
    CHECK(X509_cmp((*a)->certificate(), (*b)->certificate()) == 0);
    auto chain = verify_chain((*a)->certificate(), {}, {(*a)->chain().back()});
    REQUIRE(chain);
    CHECK(chain->size() == 2);
}

TEST_CASE("a damaged CA key file is reported, not replaced") {
    TempDir d;
    const std::string dir = (d.path / "ca").string();
    REQUIRE(LocalCa::open(dir));
    std::FILE* f = std::fopen((dir + "/" + kCaIssuerKey).c_str(), "w");
    std::fputs("garbage", f);
    std::fclose(f);
    auto again = LocalCa::open(dir);
    REQUIRE_FALSE(again);
    CHECK(again.error().message.find(kCaIssuerKey) != std::string::npos);
}

TEST_CASE("EK certificate carries the TCG profile fields and verifies") {
    TempDir d;
    auto ca = LocalCa::open((d.path / "ca").string());
    REQUIRE(ca);
    auto key = ec_key();
    auto der = issue_certificate(ek_request(key.get()), **ca);
    REQUIRE(der);
    auto cert = parse_der_certificate(*der);
    REQUIRE(cert);
    auto f = check_tcg_profile(cert->get(), CertKind::Ek);
    REQUIRE(f);
    CHECK(f->tpm.manufacturer == "id:00001014");
    CHECK(f->tpm.model == "swtpm");
    CHECK(f->tpm.version == "id:20191023");
    REQUIRE(f->spec);
    CHECK(f->spec->family == "2.0");
    CHECK(f->spec->revision == 164);
    CHECK(check_certifies_key(cert->get(), key.get()));
    auto other = ec_key();
    CHECK_FALSE(check_certifies_key(cert->get(), other.get()));
    auto chain = verify_chain(cert->get(), {(*ca)->chain().front()}, {(*ca)->chain().back()});
    REQUIRE(chain);
    CHECK(chain->size() == 3);
    CHECK_FALSE(check_tcg_profile(cert->get(), CertKind::Platform));
}

TEST_CASE("platform certificate has the platform fields and the platform EKU") {
    TempDir d;
    auto ca = LocalCa::open((d.path / "ca").string());
    REQUIRE(ca);
    auto key = ec_key();
    auto req = ek_request(key.get());
    req.kind = CertKind::Platform;
    req.platform = {"ACME", "Cloud VM", "1.0"};
    auto der = issue_certificate(req, **ca);
    REQUIRE(der);
    auto cert = parse_der_certificate(*der);
    REQUIRE(cert);
    auto f = check_tcg_profile(cert->get(), CertKind::Platform);
    REQUIRE(f);
    CHECK(f->platform.manufacturer == "ACME");
    CHECK(f->platform.model == "Cloud VM");
    CHECK(f->platform.version == "1.0");
}

TEST_CASE("tampered certificates and foreign roots do not verify") {
    TempDir d;
    auto ca = LocalCa::open((d.path / "ca").string());
    auto other_ca = LocalCa::open((d.path / "other").string());
    REQUIRE(ca);
    REQUIRE(other_ca);
    auto key = ec_key();
    auto der = issue_certificate(ek_request(key.get()), **ca);
    REQUIRE(der);
    // Flip one bit of the signature value: still parses, must not verify.
    Bytes bad = *der;
    bad[bad.size() - 3] ^= 0x01;
    auto cert = parse_der_certificate(bad);
    REQUIRE(cert);
    auto r = verify_chain(cert->get(), {(*ca)->chain().front()}, {(*ca)->chain().back()});
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("does not verify") != std::string::npos);
    auto good = parse_der_certificate(*der);
    REQUIRE(good);
    CHECK_FALSE(verify_chain(good->get(), {(*other_ca)->chain().front()}, {(*other_ca)->chain().back()}));
    // Truncated and trailing bytes are parse errors.
    CHECK_FALSE(parse_der_certificate(ByteView(der->data(), der->size() - 1)));
    Bytes longer = *der;
    longer.push_back(0);
    CHECK_FALSE(parse_der_certificate(longer));
}

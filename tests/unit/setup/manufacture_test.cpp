// Manufacturing on real libtpms into an in-memory store: EKs at the standard
// handles, certificates in NV that verify and certify those EKs, PCR banks.
#include <catch2/catch.hpp>

#include "engine/engine.hpp"
#include "x509/cert_check.hpp"
#include "x509/local_ca.hpp"
#include "tpm/public_key.hpp"
#include "setup/manufacture.hpp"
#include "tpm/commands.hpp"
#include "temp_dir.hpp"

using namespace vtpm;

namespace {

std::unique_ptr<engine::Engine> started(engine::TpmVersion v, std::unique_ptr<store::StateStore> s) {
    engine::EngineConfig c;
    c.version = v;
    c.auto_shutdown = false;
    auto e = engine::Engine::create(c, std::move(s));
    REQUIRE(e);
    REQUIRE((*e)->init(false));
    REQUIRE((*e)->startup(0));
    return std::move(*e);
}

TPMT_PUBLIC read_public(engine::Engine& e, uint32_t handle) {
    auto pub = tpm::parse_read_public(e.command(tpm::read_public(handle)));
    REQUIRE(pub);
    return *pub;
}

}  // namespace

TEST_CASE("TPM 2.0 manufacturing: EKs, certificates in NV, locked, banks") {
    TempDir d;
    auto ca = x509::LocalCa::open((d.path / "ca").string());
    REQUIRE(ca);
    setup::ManufactureOptions o;
    o.create_ek = o.ek_cert = o.platform_cert = o.lock_nvram = o.create_spk = true;
    o.pcr_banks = {"sha1", "sha256"};
    o.vmid = "vm:uuid";
    auto e = started(engine::TpmVersion::V2, store::make_memory_store());
    x509::IssuerAuthority authority(**ca);
    auto rep = setup::manufacture_tpm2(*e, o, &authority);
    REQUIRE(rep);
    CHECK(rep->certs.size() == 3);
    CHECK(rep->active_banks == std::vector<std::string>{"sha1", "sha256"});
    e->stop();
    // Power on again from the manufactured state, as the bridge will.
    REQUIRE(e->init(false));
    REQUIRE(e->startup(0));
    for (const auto& c : rep->certs) {
        auto nv = setup::tpm2_read_nv(*e, c.nv_index);
        REQUIRE(nv);
        CHECK(*nv == c.der);
        auto cert = x509::parse_der_certificate(*nv);
        REQUIRE(cert);
        CHECK(x509::verify_chain(cert->get(), {(*ca)->chain().front()}, {(*ca)->chain().back()}));
        const uint32_t handle = c.nv_index == tpm::kNvEccP256EkCert ? tpm::kEkEccP256Handle
                                                                             : tpm::kEkRsa2048Handle;
        auto key = tpm::pkey_from_tpm_public(read_public(*e, handle));
        REQUIRE(key);
        CHECK(x509::check_certifies_key(cert->get(), key->get()));
        // Locked: another NV_Write with platform auth is refused.
        Bytes w = e->command(tpm::nv_write(c.nv_index, Bytes{1}, 0));
        CHECK(tpm::response_code(w) != 0);
    }
    CHECK(read_public(*e, tpm::kSpkHandle).type == TPM2_ALG_RSA);
    // The EK is the standard L-1 key: recreating it from the template gives the same public key.
    auto again = tpm::parse_create_primary(
        e->command(tpm::create_primary(TPM2_RH_ENDORSEMENT, tpm::ek_template(tpm::EkKind::Rsa2048, false, false))));
    REQUIRE(again);
    const auto persisted = read_public(*e, tpm::kEkRsa2048Handle);
    CHECK(Bytes(again->pub.unique.rsa.buffer, again->pub.unique.rsa.buffer + again->pub.unique.rsa.size) ==
          Bytes(persisted.unique.rsa.buffer, persisted.unique.rsa.buffer + persisted.unique.rsa.size));
    e->stop();
}

TEST_CASE("PCR reconfiguration keeps keys and rejects unknown-only banks") {
    auto e = started(engine::TpmVersion::V2, store::make_memory_store());
    setup::ManufactureOptions o;
    o.create_ek = true;
    REQUIRE(setup::manufacture_tpm2(*e, o, nullptr));
    e->stop();
    REQUIRE(e->init(false));
    REQUIRE(e->startup(0));
    setup::ManufactureOptions r;
    r.reconfigure = true;
    r.pcr_banks = {"sha384"};
    auto rep = setup::manufacture_tpm2(*e, r, nullptr);
    REQUIRE(rep);
    CHECK(rep->active_banks == std::vector<std::string>{"sha384"});
    e->stop();
    REQUIRE(e->init(false));
    REQUIRE(e->startup(0));
    r.pcr_banks = {"md5"};
    auto bad = setup::manufacture_tpm2(*e, r, nullptr);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message.find("No PCR banks") != std::string::npos);
    CHECK(read_public(*e, tpm::kEkRsa2048Handle).type == TPM2_ALG_RSA);
    e->stop();
}

TEST_CASE("certificates without an issuer are refused before anything is made") {
    auto e = started(engine::TpmVersion::V2, store::make_memory_store());
    setup::ManufactureOptions o;
    o.create_ek = o.ek_cert = true;
    auto rep = setup::manufacture_tpm2(*e, o, nullptr);
    REQUIRE_FALSE(rep);
    CHECK(rep.error().message.find("issuer") != std::string::npos);
    e->stop();
}

TEST_CASE("TPM 1.2 manufacturing: EK, ownership, certificates, NV lock") {
    TempDir d;
    auto ca = x509::LocalCa::open((d.path / "ca").string());
    REQUIRE(ca);
    setup::ManufactureOptions o;
    o.create_ek = o.ek_cert = o.platform_cert = o.lock_nvram = o.take_ownership = true;
    o.owner_auth = Bytes(20, 0);
    o.srk_auth = Bytes(20, 0);
    auto e = started(engine::TpmVersion::V1_2, store::make_memory_store());
    x509::IssuerAuthority authority(**ca);
    auto rep = setup::manufacture_tpm12(*e, o, &authority);
    REQUIRE(rep);
    REQUIRE(rep->certs.size() == 2);
    CHECK(rep->certs[0].nv_index == 0x1000f000);
    auto cert = x509::parse_der_certificate(rep->certs[0].der);
    REQUIRE(cert);
    CHECK(x509::check_tcg_profile(cert->get(), x509::CertKind::Ek));
    // A second EK cannot be created: the TPM already has one.
    setup::ManufactureOptions again;
    again.create_ek = true;
    CHECK_FALSE(setup::manufacture_tpm12(*e, again, nullptr));
    e->stop();
}

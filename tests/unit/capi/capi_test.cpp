// The public API as a hypervisor tool uses it: libvtpm.so through the C ABI,
// via the C++ wrapper in vtpm.hpp.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <string>

#include <catch2/catch.hpp>

#include "temp_dir.hpp"
#include <stdlib.h>

#include <filesystem>
#include <vector>

#include "vtpm/vtpm.hpp"

namespace fs = std::filesystem;

namespace {
const std::vector<uint8_t> kStartup = {0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x44, 0, 0};
// TPM2_PCR_Read(sha256, PCR 16)
const std::vector<uint8_t> kPcrRead = {0x80, 0x01, 0, 0, 0, 0x14, 0, 0, 0x01, 0x7e, 0, 0, 0, 1, 0, 0x0b, 3, 0, 0, 1};
// TPM2_PCR_Extend(16, password session, sha256 = 32 x 0x77)
std::vector<uint8_t> extend() {
    std::vector<uint8_t> c = {0x80, 0x02, 0, 0, 0, 0x41, 0, 0, 0x01, 0x82, 0, 0, 0, 0x10, 0, 0, 0, 9,
                              0x40, 0, 0, 9, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0x0b};
    c.insert(c.end(), 32, 0x77);
    return c;
}
uint32_t rc(const std::vector<uint8_t>& r) {
    return uint32_t{r[6]} << 24 | uint32_t{r[7]} << 16 | uint32_t{r[8]} << 8 | r[9];
}
}  // namespace

TEST_CASE("C API: power on, run commands, move state through blobs") {
    TempDir d;
    vtpm::Vtpm::Options o;
    o.state_dir = d.path.string();
    o.migration_key = std::vector<uint8_t>(32, 0x3c);
    auto t = vtpm::Vtpm::open(o);
    REQUIRE(t.ok());
    CHECK(std::string(vtpm_version()).size() > 0);
    REQUIRE(t->init().ok());
    REQUIRE(rc(*t->process(kStartup)) == 0);
    REQUIRE(rc(*t->process(extend())) == 0);
    auto before = t->process(kPcrRead);
    REQUIRE(before.ok());

    auto perm = t->get_state_blob(VTPM_BLOB_PERMANENT);
    auto vol = t->get_state_blob(VTPM_BLOB_VOLATILE);
    REQUIRE(perm.ok());
    REQUIRE(vol.ok());
    CHECK((((*perm)[4] << 8 | (*perm)[5]) & 0x12) == 0x12);  // migration-key encrypted, 256 bit
    CHECK(t->get_state_blob(VTPM_BLOB_SAVESTATE).code() == vtpm::rc::kRetry);
    CHECK(t->set_state_blob(VTPM_BLOB_PERMANENT, *perm).code() == vtpm::rc::kBadOrdinal);  // running

    REQUIRE(t->stop().ok());
    auto bad = *perm;
    bad[bad.size() / 2] ^= 1;
    auto r = t->set_state_blob(VTPM_BLOB_PERMANENT, bad);
    CHECK(r.code() == vtpm::rc::kDecryptError);
    CHECK(r.error().message.find("HMAC") != std::string::npos);
    REQUIRE(t->set_state_blob(VTPM_BLOB_PERMANENT, *perm).ok());
    REQUIRE(t->set_state_blob(VTPM_BLOB_VOLATILE, *vol).ok());
    REQUIRE(t->init(true).ok());
    auto after = t->process(kPcrRead);
    REQUIRE(after.ok());
    CHECK(*after == *before);  // PCR 16 came back through the blobs

    auto ctrl = t->ctrl(std::vector<uint8_t>{0, 0, 0, 0x0f});  // CMD_GET_CONFIG
    REQUIRE(ctrl.ok());
    CHECK(*ctrl == std::vector<uint8_t>{0, 0, 0, 0, 0, 0, 0, 2});  // migration key configured
}

TEST_CASE("C API: control messages checked as swtpm checks them: TPM state first, then size") {
    TempDir d;
    vtpm::Vtpm::Options o;
    o.state_dir = d.path.string();
    auto t = vtpm::Vtpm::open(o);
    REQUIRE(t.ok());
    using V = std::vector<uint8_t>;
    const V bad_ordinal{0, 0, 0, 0x0a}, bad_parameter{0, 0, 0, 0x03};
    const V established_plus_byte{0, 0, 0, 0x04, 0};  // GET_TPMESTABLISHED takes no body
    // SET_STATEBLOB permanent announcing 4 bytes and bringing 8.
    const V long_blob{0, 0, 0, 0x0d, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0};
    // Stopped: a command that needs a running TPM is "not running", whatever its size.
    CHECK(*t->ctrl(established_plus_byte) == bad_ordinal);
    CHECK(*t->ctrl(V{0, 0, 0, 0x0a, 1, 2}) == bad_ordinal);  // STORE_VOLATILE
    CHECK(*t->ctrl(long_blob) == bad_parameter);
    REQUIRE(t->init().ok());
    // Running: now the size counts, and SET_STATEBLOB is "running" whatever its size.
    CHECK(*t->ctrl(established_plus_byte) == bad_parameter);
    CHECK(*t->ctrl(long_blob) == bad_ordinal);
    // GET_STATEBLOB of a type swtpm has no file for: TPM_RETRY and an empty blob.
    CHECK(*t->ctrl(V{0, 0, 0, 0x0c, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0}) ==
          V{0, 0, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
}

TEST_CASE("C API: bad options are refused with a message") {
    vtpm_options o{};
    o.struct_size = sizeof o;
    vtpm_t* t = nullptr;
    CHECK(vtpm_open(&o, &t) == vtpm::rc::kBadParameter);  // no state_dir
    CHECK(std::string(vtpm_open_error()).find("state_dir") != std::string::npos);
    o.state_dir = "/nonexistent/vtpm";
    CHECK(vtpm_open(&o, &t) != 0);
    CHECK(std::string(vtpm_open_error()).find("/nonexistent/vtpm") != std::string::npos);
    uint8_t key[7] = {};
    o.state_key = key;
    o.state_key_len = sizeof key;
    CHECK(vtpm_open(&o, &t) == vtpm::rc::kBadKeyProperty);
    CHECK(t == nullptr);
}

namespace {

// A throw-away self-signed certificate, PEM.
std::string self_signed_pem(const char* cn) {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, key);
    X509_sign(x, key, EVP_sha256());
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, x);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<size_t>(n));
    BIO_free(bio);
    X509_free(x);
    EVP_PKEY_free(key);
    return pem;
}

}  // namespace

TEST_CASE("C API: evidence verification names what failed") {
    char* json = nullptr;
    CHECK(vtpm_verify_evidence(nullptr, &json) == 3);
    REQUIRE(json);
    CHECK(std::string(json).find("\"failed_step\":\"parameters\"") != std::string::npos);
    vtpm_free(json);

    const std::string ak = self_signed_pem("host AK"), ca = self_signed_pem("CA"), user = self_signed_pem("user");
    const uint8_t nonce[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    const uint8_t garbage[16] = {'V', 'T', 'P', 'M', 'E', 'V', '0', '1', 0, 1, 0, 0, 0, 99};
    vtpm_verify_params p{};
    p.struct_size = sizeof p;
    p.host_ak_cert_pem = ak.c_str();
    p.ca_pem = ca.c_str();
    p.user_cert_pem = user.c_str();
    p.nonce = nonce;
    p.nonce_len = sizeof nonce;
    p.vm_uuid = "6c1f8e22-4b6f-4d0e-9a51-0d6c3f1b2a77";
    p.evidence = garbage;
    p.evidence_len = sizeof garbage;
    CHECK(vtpm_verify_evidence(&p, &json) == 9);
    REQUIRE(json);
    CHECK(std::string(json).find("\"failed_step\":\"evidence\"") != std::string::npos);
    CHECK(std::string(json).find("runs past the end") != std::string::npos);
    vtpm_free(json);
    auto verdict = vtpm::verify_evidence(p);  // the C++ API beside it
    REQUIRE(verdict);
    CHECK_FALSE(verdict->ok);
    CHECK(verdict->report_json.find("\"failed_step\":\"evidence\"") != std::string::npos);
    // Fail closed on the inputs: no VM to expect, or a short nonce.
    p.vm_uuid = nullptr;
    CHECK(vtpm_verify_evidence(&p, &json) == 9);
    REQUIRE(json);
    CHECK(std::string(json).find("\"failed_step\":\"inputs\"") != std::string::npos);
    vtpm_free(json);
    p.vm_uuid = "6c1f8e22-4b6f-4d0e-9a51-0d6c3f1b2a77";
    p.nonce_len = 8;
    CHECK(vtpm_verify_evidence(&p, nullptr) == 9);
    p.nonce_len = sizeof nonce;
    // A VM UUID that is not one (it is read as vtpm-attest verify reads
    // it), or host PCRs that do not exist: a parameter error, never fewer
    // checks.
    p.vm_uuid = "not-a-uuid";
    CHECK(vtpm_verify_evidence(&p, nullptr) == 3);
    p.vm_uuid = "6c1f8e22-4b6f-4d0e-9a51-0d6c3f1b2a77";
    p.required_host_pcrs = 1u << 24;
    CHECK(vtpm_verify_evidence(&p, nullptr) == 3);
    p.required_host_pcrs = 0;
    p.nonce_len = sizeof nonce;
    p.user_cert_pem = "not a certificate";
    CHECK(vtpm_verify_evidence(&p, nullptr) == 3);
    CHECK(vtpm::verify_evidence(p).code() == 3);
}

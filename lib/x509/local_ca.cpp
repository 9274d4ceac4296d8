#include "x509/local_ca.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "x509/tcg_cert.hpp"
#include "util/durable_file.hpp"
#include "util/fd.hpp"

namespace vtpm::x509 {

namespace {

std::string errstr() { return std::strerror(errno); }

Result<PkeyPtr> new_ec_key() {
    PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));
    if (!key) return make_error(rc::kFail, ossl_error("could not create a P-384 key"));
    return key;
}

Result<X509Ptr> make_ca_cert(const std::string& cn, EVP_PKEY* key, X509* signer_cert, EVP_PKEY* signer_key,
                             int days, bool limit_depth) {
    X509Ptr cert(X509_new());
    uint8_t serial[16];
    if (!cert || RAND_bytes(serial, sizeof(serial)) != 1) return make_error(rc::kFail, "out of memory or randomness");
    serial[0] = static_cast<uint8_t>((serial[0] & 0x7f) | 0x40);
    BnPtr bn(BN_bin2bn(serial, sizeof(serial), nullptr));
    time_t now = time(nullptr);
    X509_NAME* subject = X509_get_subject_name(cert.get());
    if (!bn || !X509_set_version(cert.get(), X509_VERSION_3) ||
        !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())) ||
        !X509_time_adj_ex(X509_getm_notBefore(cert.get()), 0, 0, &now) ||
        !X509_time_adj_ex(X509_getm_notAfter(cert.get()), days, 0, &now) ||
        !X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()),
                                    -1, -1, 0) ||
        !X509_set_issuer_name(cert.get(), signer_cert ? X509_get_subject_name(signer_cert) : subject) ||
        !X509_set_pubkey(cert.get(), key))
        return make_error(rc::kFail, ossl_error("could not fill the CA certificate"));
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, signer_cert ? signer_cert : cert.get(), cert.get(), nullptr, nullptr, 0);
    // pathlen:1: the issuing CA may certify one more CA, a host AuthKey that
    // issues EK certificates and CertvAIKs when this CA is the privacy CA.
    const char* bc = limit_depth ? "critical,CA:TRUE,pathlen:1" : "critical,CA:TRUE";
    for (auto [nid, value] : {std::pair{NID_basic_constraints, bc}, {NID_key_usage, "critical,keyCertSign,cRLSign"},
                              {NID_subject_key_identifier, "hash"}, {NID_authority_key_identifier, "keyid:always"}}) {
        X509ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
        if (!ext || !X509_add_ext(cert.get(), ext.get(), -1))
            return make_error(rc::kFail, ossl_error(std::string("could not add ") + OBJ_nid2sn(nid)));
    }
    if (X509_sign(cert.get(), signer_key, EVP_sha384()) <= 0)
        return make_error(rc::kFail, ossl_error("could not sign the CA certificate"));
    return cert;
}

Result<std::string> key_pem(EVP_PKEY* key) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
        return make_error(rc::kFail, ossl_error("could not encode a key"));
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(n));
}

Result<void> write_file(const std::string& dir, const char* name, const std::string& text, mode_t mode) {
    const std::string path = dir + "/" + name;
    return replace_file_durably(path + ".tmp", path,
                                       ByteView(reinterpret_cast<const uint8_t*>(text.data()), text.size()), mode);
}

Result<PkeyPtr> read_key(const std::string& path) {
    auto bytes = read_whole_file(path);
    if (!bytes) return make_error(bytes.code(), "could not read " + path + ": " + bytes.error().message);
    BioPtr bio(BIO_new_mem_buf(bytes->data(), static_cast<int>(bytes->size())));
    PkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    OPENSSL_cleanse(bytes->data(), bytes->size());
    if (!key) return make_error(rc::kFail, ossl_error(path + " holds no private key"));
    return key;
}

// Create root and issuing CA in `dir` (the caller holds the lock).
Result<void> create_ca(const std::string& dir) {
    auto root_key = new_ec_key();
    if (!root_key) return root_key.error();
    auto root = make_ca_cert("libvtpm local CA root", root_key->get(), nullptr, root_key->get(), 3650 * 3, false);
    if (!root) return root.error();
    auto issuer_key = new_ec_key();
    if (!issuer_key) return issuer_key.error();
    auto issuer =
        make_ca_cert("libvtpm local CA issuer", issuer_key->get(), root->get(), root_key->get(), 3650 * 2, true);
    if (!issuer) return issuer.error();
    auto rk = key_pem(root_key->get());
    auto ik = key_pem(issuer_key->get());
    auto rc_pem = to_pem(root->get());
    auto ic_pem = to_pem(issuer->get());
    if (!rk || !ik || !rc_pem || !ic_pem) return make_error(rc::kFail, "could not encode the new CA");
    // Keys first, the issuer certificate last: its presence marks a complete CA.
    if (auto r = write_file(dir, kCaRootKey, *rk, 0600); !r) return r;
    if (auto r = write_file(dir, kCaIssuerKey, *ik, 0600); !r) return r;
    if (auto r = write_file(dir, kCaRootCert, *rc_pem, 0644); !r) return r;
    return write_file(dir, kCaIssuerCert, *ic_pem, 0644);
}

}  // namespace

Result<X509Ptr> read_pem_certificate(const std::string& path) {
    auto bytes = read_whole_file(path);
    if (!bytes) return make_error(bytes.code(), "could not read " + path + ": " + bytes.error().message);
    BioPtr bio(BIO_new_mem_buf(bytes->data(), static_cast<int>(bytes->size())));
    X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!cert) return make_error(rc::kBadParameter, ossl_error(path + " holds no PEM certificate"));
    return cert;
}

Result<X509StackPtr> read_pem_certificates(const std::string& path) {
    auto bytes = read_whole_file(path);
    if (!bytes) return make_error(bytes.code(), "could not read " + path + ": " + bytes.error().message);
    BioPtr bio(BIO_new_mem_buf(bytes->data(), static_cast<int>(bytes->size())));
    X509StackPtr certs(sk_X509_new_null());
    if (!bio || !certs) return make_error(rc::kFail, "out of memory");
    while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) sk_X509_push(certs.get(), c);
    ERR_clear_error();  // the end of the bundle
    if (sk_X509_num(certs.get()) == 0) return make_error(rc::kBadParameter, path + " holds no PEM certificate");
    return certs;
}

Result<std::unique_ptr<LocalCa>> LocalCa::open(const std::string& dir) {
    if (mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST)
        return make_error(rc::kFail, "could not create the CA directory " + dir + ": " + errstr());
    const std::string lock_path = dir + "/.lock";
    UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!lock) return make_error(rc::kFail, "could not open " + lock_path + ": " + errstr());
    // Blocking: parallel VM starts wait for each other here, briefly.
    while (flock(lock.get(), LOCK_EX) != 0)
        if (errno != EINTR) return make_error(rc::kFail, "could not lock " + lock_path + ": " + errstr());
    struct stat st;
    if (stat((dir + "/" + kCaIssuerCert).c_str(), &st) != 0) {
        if (errno != ENOENT) return make_error(rc::kFail, "could not stat the CA in " + dir + ": " + errstr());
        if (auto r = create_ca(dir); !r)
            return make_error(r.code(), "creating the local CA in " + dir + ": " + r.error().message);
    }
    auto root = read_pem_certificate(dir + "/" + kCaRootCert);
    if (!root) return root.error();
    auto issuer = read_pem_certificate(dir + "/" + kCaIssuerCert);
    if (!issuer) return issuer.error();
    auto key = read_key(dir + "/" + kCaIssuerKey);
    if (!key) return key.error();
    if (X509_check_private_key(issuer->get(), key->get()) != 1)
        return make_error(rc::kFail, ossl_error(dir + "/" + kCaIssuerKey + " does not match " + kCaIssuerCert));
    return std::make_unique<LocalCa>(dir, std::move(*root), std::move(*issuer), std::move(*key));
}

Result<void> LocalCa::sign(X509* cert) {
    if (X509_sign(cert, key_.get(), EVP_sha384()) <= 0) return make_error(rc::kFail, ossl_error("signing failed"));
    return {};
}

std::string LocalCa::describe() const { return "local CA in " + dir_; }

}  // namespace vtpm::x509

// ConfirmVaik: the host takes the vAIK name the vTPM now holds only for the
// issuance pending, and only a well-formed one.
#include <catch2/catch.hpp>

#include <map>

#include "issuance/issue.hpp"
#include "util/uuid.hpp"

using namespace vtpm;
using namespace vtpm::issuance;

namespace {

constexpr const char* kUuid = "6f0b0e7e-1c2d-4a5b-8c9d-0e1f2a3b4c5d";

// The identity records in memory, as the daemon's ledger keeps them.
class Book final : public IdentityBook {
public:
    Result<hoststate::IdentityRecord> load(const std::string& uuid) override {
        auto it = records.find(uuid);
        if (it == records.end()) return make_error(rc::kRetry, "no record");
        return it->second;
    }
    Result<void> save(const hoststate::IdentityRecord& r) override {
        records[r.vm_uuid] = r;
        return {};
    }
    std::map<std::string, hoststate::IdentityRecord> records;
};

Bytes sha256_name(uint8_t fill) {
    Bytes n{0x00, 0x0B};
    n.resize(34, fill);
    return n;
}

}  // namespace

TEST_CASE("ConfirmVaik: the pending generation, with a SHA-256 vAIK name") {
    Book book;
    hostapi::VaikConfirm c;
    c.vm = *parse_uuid(kUuid);
    c.generation = 3;
    c.vaik_name = sha256_name(0x11);
    auto none = confirm_vaik_identity(book, c);
    REQUIRE_FALSE(none);
    CHECK(none.error().message.find("no identity was issued") != std::string::npos);

    book.records[kUuid] = {kUuid, 2, sha256_name(0x22), 3};
    // An empty or malformed name would switch the vAIK comparison off for
    // later issuances and for verifiers: refused, the record unchanged.
    Bytes truncated = sha256_name(0x11);
    truncated.pop_back();
    for (const Bytes& bad : {Bytes{}, Bytes{0x00, 0x0B}, Bytes(34, 0x00), truncated}) {
        c.vaik_name = bad;
        auto r = confirm_vaik_identity(book, c);
        REQUIRE_FALSE(r);
        CHECK(r.error().message.find("not a SHA-256 TPM name") != std::string::npos);
        CHECK(book.records[kUuid].pending == std::optional<uint64_t>(3));
        CHECK(book.records[kUuid].vaik_name == sha256_name(0x22));
    }
    c.vaik_name = sha256_name(0x11);
    c.generation = 4;
    CHECK_FALSE(confirm_vaik_identity(book, c));  // not the one pending
    c.generation = 3;
    REQUIRE(confirm_vaik_identity(book, c));
    CHECK(book.records[kUuid].generation == 3);
    CHECK_FALSE(book.records[kUuid].pending);
    CHECK(book.records[kUuid].vaik_name == sha256_name(0x11));
    CHECK_FALSE(confirm_vaik_identity(book, c));  // confirmed once
}

// HOSTDIR/ledger: its text round-trips, its MAC refuses any edit and another
// key, and its parser names what is wrong.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "../temp_dir.hpp"
#include "hoststate/host_files.hpp"
#include "hoststate/ledger.hpp"

using namespace vtpm;
using namespace vtpm::hoststate;

namespace {

constexpr const char* kVm = "3f0d9a4e-5b6c-4d7e-8f90-a1b2c3d4e5f6";

std::string slurp(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void spill(const std::filesystem::path& p, const std::string& s) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << s;
}

}  // namespace

TEST_CASE("the ledger file round-trips and names its counter") {
    LedgerBook b;
    b.counter = 7;
    b.vms[kVm] = LedgerEntry{3, {}, true};
    b.vms[kVm].root[0] = 0xab;
    b.history[kVm] = {LedgerEntry{1, {}, false}, LedgerEntry{2, {}, false}};
    const std::string text = format_ledger_book(b);
    CHECK(text.find("counter = 7\n") == 0);
    auto back = parse_ledger_book(text, "ledger");
    REQUIRE(back);
    CHECK(back->counter == 7);
    REQUIRE(back->vms.count(kVm) == 1);
    CHECK(back->vms.at(kVm).generation == 3);
    CHECK(back->vms.at(kVm).root == b.vms[kVm].root);
    CHECK(back->vms.at(kVm).restored);
    REQUIRE(back->history.at(kVm).size() == 2);
    CHECK(back->history.at(kVm)[1].generation == 2);
    CHECK(format_ledger_book(*back) == text);
}

TEST_CASE("the ledger parser refuses what vtpm-hostd never writes") {
    const std::string root(64, '0');
    CHECK(parse_ledger_book("vm = " + std::string(kVm) + " 1 " + root + " saved\n", "l").error().message.find(
              "no counter line") != std::string::npos);
    CHECK_FALSE(parse_ledger_book("counter = 1\ncounter = 2\n", "l"));
    CHECK_FALSE(parse_ledger_book("counter = -1\n", "l"));
    CHECK_FALSE(parse_ledger_book("counter = 1\nvm = not-a-uuid 1 " + root + "\n", "l"));
    CHECK_FALSE(parse_ledger_book("counter = 1\nvm = " + std::string(kVm) + " 1 abcd\n", "l"));
    CHECK_FALSE(parse_ledger_book("counter = 1\nvm = " + std::string(kVm) + " 1 " + root + " extra\n", "l"));
    CHECK_FALSE(parse_ledger_book("counter = 1\nvm = " + std::string(kVm) + " 1 " + root + "\n", "l"));  // no state
    CHECK_FALSE(parse_ledger_book("counter = 1\nvm = " + std::string(kVm) + " 1 " + root + " lost\n", "l"));
    // History lines are kept in order.
    const std::string old1 = "old = " + std::string(kVm) + " 1 " + root + "\n";
    const std::string old2 = "old = " + std::string(kVm) + " 2 " + root + "\n";
    CHECK(parse_ledger_book("counter = 1\n" + old1 + old2, "l"));
    CHECK(parse_ledger_book("counter = 1\n" + old2 + old1, "l").error().message.find("out of order") !=
          std::string::npos);
    const std::string line = "vm = " + std::string(kVm) + " 1 " + root + " saved\n";
    CHECK(parse_ledger_book("counter = 1\n" + line + line, "l").error().message.find("twice") != std::string::npos);
    CHECK(parse_ledger_book("counter = 1\nother = 2\n", "l").error().message.find("unknown key") != std::string::npos);
}

TEST_CASE("the ledger keeps the VMs' identity records, anchored with the rest") {
    LedgerBook b;
    b.counter = 4;
    b.identities[kVm] = IdentityRecord{kVm, 2, Bytes{0x00, 0x0b, 0xaa}, 3};
    const std::string other = "0f0d9a4e-5b6c-4d7e-8f90-a1b2c3d4e5f6";
    b.identities[other] = IdentityRecord{other, 0, {}, std::nullopt};
    const std::string text = format_ledger_book(b);
    CHECK(text.find("identity = " + std::string(kVm) + " 2 000baa 3\n") != std::string::npos);
    CHECK(text.find("identity = " + other + " 0 - -\n") != std::string::npos);
    auto back = parse_ledger_book(text, "ledger");
    REQUIRE(back);
    CHECK(format_ledger_book(*back) == text);
    REQUIRE(back->identities.at(kVm).pending);
    CHECK(*back->identities.at(kVm).pending == 3);
    CHECK(back->identities.at(kVm).vaik_name == Bytes{0x00, 0x0b, 0xaa});
    CHECK_FALSE(back->identities.at(other).pending);

    const std::string vm(kVm);
    for (const std::string& bad : {"identity = " + vm + " 2 000baa\n", "identity = " + vm + " x 000baa -\n",
                                   "identity = " + vm + " 2 zz -\n", "identity = " + vm + " 2 - - extra\n",
                                   std::string("identity = not-a-uuid 2 - -\n"), "identity = " + vm + " 2 - 0x3\n"})
        CHECK(parse_ledger_book("counter = 1\n" + bad, "l").error().message.find("not 'identity = ") !=
              std::string::npos);
    const std::string line = "identity = " + vm + " 1 - -\n";
    CHECK(parse_ledger_book("counter = 1\n" + line + line, "l").error().message.find("twice") != std::string::npos);

    // Committed with a counter, read back through the MAC.
    TempDir d;
    const Bytes key(32, 0x33);
    Ledger l(d.path.string(), key);
    REQUIRE(l.create(1));
    CHECK_FALSE(l.identity(kVm));
    REQUIRE(l.commit_identity(IdentityRecord{kVm, 0, {}, 1}, 2));
    REQUIRE(l.commit_identity(IdentityRecord{kVm, 1, Bytes{1, 2}, std::nullopt}, 3));
    Ledger again(d.path.string(), key);
    REQUIRE(again.load());
    CHECK(again.book().counter == 3);
    REQUIRE(again.identity(kVm));
    CHECK(again.identity(kVm)->generation == 1);
    CHECK(again.identity(kVm)->vaik_name == Bytes{1, 2});
    CHECK_FALSE(again.identity(kVm)->pending);
}

TEST_CASE("the ledger keeps the VMs' EK bindings and takes in older versions' files once") {
    Digest rsa{}, ec{};
    rsa.fill(0xa1);
    ec.fill(0xec);
    LedgerBook b;
    b.counter = 2;
    b.ek_bindings[kVm] = EkBinding{rsa, ec};
    const std::string other = "0f0d9a4e-5b6c-4d7e-8f90-a1b2c3d4e5f6";
    b.ek_bindings[other] = EkBinding{std::nullopt, ec};
    b.ek_files_imported = true;
    const std::string text = format_ledger_book(b);
    CHECK(text.find("ek = " + std::string(kVm) + " " + to_hex(rsa) + " " + to_hex(ec) + "\n") != std::string::npos);
    CHECK(text.find("ek = " + other + " - " + to_hex(ec) + "\n") != std::string::npos);
    CHECK(text.find("ek_files = imported\n") != std::string::npos);
    auto back = parse_ledger_book(text, "ledger");
    REQUIRE(back);
    CHECK(back->ek_bindings == b.ek_bindings);
    CHECK(back->ek_files_imported);
    CHECK(format_ledger_book(*back) == text);
    CHECK_FALSE(parse_ledger_book("counter = 1\n", "l")->ek_files_imported);

    const std::string vm(kVm), h = to_hex(rsa);
    for (const std::string& bad :
         {"ek = " + vm + " - -\n", "ek = " + vm + " " + h + "\n", "ek = " + vm + " " + h + " " + h + " " + h + "\n",
          "ek = " + vm + " abcd -\n", "ek = " + vm + " - zz\n", "ek = not-a-uuid " + h + " -\n"})
        CHECK(parse_ledger_book("counter = 1\n" + bad, "l").error().message.find("not 'ek = ") != std::string::npos);
    const std::string line = "ek = " + vm + " " + h + " -\n";
    CHECK(parse_ledger_book("counter = 1\n" + line + line, "l").error().message.find("twice") != std::string::npos);
    CHECK_FALSE(parse_ledger_book("counter = 1\nek_files = imported\nek_files = imported\n", "l"));
    CHECK_FALSE(parse_ledger_book("counter = 1\nek_files = later\n", "l"));

    // Committed with a counter and read back through the MAC; the import
    // never replaces a binding the ledger has.
    TempDir d;
    const Bytes key(32, 0x44);
    Ledger l(d.path.string(), key);
    REQUIRE(l.create(1));
    CHECK(l.ek_binding(kVm) == EkBinding{});
    REQUIRE(l.commit_ek_binding(kVm, EkBinding{rsa, std::nullopt}, 2));
    Digest planted{};
    planted.fill(0x66);
    REQUIRE(l.import_ek_files({{vm, EkBinding{planted, planted}}, {other, EkBinding{std::nullopt, ec}}}, 3));
    Ledger again(d.path.string(), key);
    REQUIRE(again.load());
    CHECK(again.book().counter == 3);
    CHECK(again.book().ek_files_imported);
    CHECK(again.ek_binding(kVm) == EkBinding{rsa, std::nullopt});
    CHECK(again.ek_binding(other) == EkBinding{std::nullopt, ec});
    REQUIRE(again.commit_ek_binding(other, EkBinding{}, 4));  // an empty binding is no line
    CHECK(slurp(d.path / kLedgerFile).find("ek = " + other) == std::string::npos);
}

TEST_CASE("the ledger's MAC: written by commit, checked by load") {
    TempDir d;
    const Bytes key(32, 0x11);
    Ledger l(d.path.string(), key);
    auto none = l.load();
    REQUIRE(none);
    CHECK_FALSE(*none);
    REQUIRE(l.create(1));
    REQUIRE(l.commit(kVm, LedgerEntry{1, {}}, 2));
    CHECK(l.book().counter == 2);

    Ledger again(d.path.string(), key);
    auto loaded = again.load();
    REQUIRE(loaded);
    CHECK(*loaded);
    CHECK(again.book().counter == 2);
    REQUIRE(again.latest(kVm));
    CHECK(again.latest(kVm)->generation == 1);

    // Another key (another host's daemon): refused.
    Ledger other(d.path.string(), Bytes(32, 0x22));
    CHECK(other.load().error().message.find("the MAC does not verify") != std::string::npos);

    // Any edit: refused; a file without a MAC: refused.
    const auto file = d.path / kLedgerFile;
    const std::string good = slurp(file);
    std::string edited = good;
    edited.replace(edited.find(" 1 "), 3, " 0 ");
    spill(file, edited);
    CHECK(Ledger(d.path.string(), key).load().error().message.find("the MAC does not verify") != std::string::npos);
    spill(file, good.substr(0, good.find("mac = ")));
    CHECK(Ledger(d.path.string(), key).load().error().message.find("has no MAC") != std::string::npos);
    spill(file, good + "counter = 3\n");
    CHECK_FALSE(Ledger(d.path.string(), key).load());
    spill(file, good);
    CHECK(Ledger(d.path.string(), key).load());
}

TEST_CASE("a save restores once; a revert brings an earlier save back, generations never reused") {
    TempDir d;
    Ledger l(d.path.string(), Bytes(32, 0x11));
    REQUIRE(l.create(1));
    Digest r1{}, r2{};
    r1[0] = 1;
    r2[0] = 2;
    CHECK(l.next_generation(kVm) == 1);
    REQUIRE(l.commit(kVm, LedgerEntry{1, r1, false}, 2));
    REQUIRE(l.commit(kVm, LedgerEntry{2, r2, false}, 3));
    CHECK_FALSE(l.consume(kVm, 1, r1, 4));  // not the latest
    CHECK_FALSE(l.consume(kVm, 2, r1, 4));  // another root
    REQUIRE(l.consume(kVm, 2, r2, 4));
    CHECK(l.consume(kVm, 2, r2, 5).error().message.find("restored already") != std::string::npos);
    CHECK(l.book().counter == 4);  // refusals write nothing
    REQUIRE(l.revert(kVm, 1, 5));
    CHECK(l.latest(kVm)->generation == 1);
    CHECK_FALSE(l.latest(kVm)->restored);
    CHECK(l.next_generation(kVm) == 3);  // 2 is never given out again
    REQUIRE(l.revert(kVm, 2, 6));
    CHECK_FALSE(l.latest(kVm)->restored);  // a revert makes it restorable again
    CHECK(l.revert(kVm, 9, 7).error().message.find("no save of generation 9") != std::string::npos);
    Ledger again(d.path.string(), Bytes(32, 0x11));
    REQUIRE(again.load());
    CHECK(again.book().counter == 6);
    CHECK(again.book().history.at(kVm).size() == 1);
}

TEST_CASE("the owner's approvals: round trip, and an edited file is refused whole") {
    std::vector<Approval> list;
    for (uint8_t i = 1; i <= 2; ++i) list.push_back({Bytes(32, i), Bytes(70, static_cast<uint8_t>(i + 10)),
                                                     Bytes(70, static_cast<uint8_t>(i + 20)), 1765000000u + i});
    const std::string text = encode_authorization(list);
    auto back = parse_authorization(text);
    REQUIRE(back);
    REQUIRE(back->size() == 2);
    CHECK((*back)[1].pcr_digest == Bytes(32, 2));
    CHECK((*back)[0].unseal_signature == Bytes(70, 21));
    CHECK((*back)[1].time == 1765000002u);
    CHECK(encode_authorization(*back) == text);
    const auto refused = [](const std::string& t, const char* why) {
        auto r = parse_authorization(t);
        INFO(t);
        REQUIRE_FALSE(r);
        CHECK(r.error().message.find(why) != std::string::npos);
    };
    refused("", "no approved host state");
    refused("# only a comment\n", "no approved host state");
    refused("approved = " + std::string(62, '1') + " aa bb 1\n", "bad PCR digest");
    refused("approved = " + std::string(64, '1') + " zz bb 1\n", "bad AuthKey policy signature");
    refused("approved = " + std::string(64, '1') + " aa bb\n", "four fields");
    refused("approved = " + std::string(64, '1') + " aa bb 1 extra\n", "four fields");
    refused("approved = " + std::string(64, '1') + " aa bb -1\n", "bad time");
    refused("pcrs = 0,1\n", "not an 'approved = ...' line");
    refused(text + text, "approved twice");
    std::string many;
    for (int i = 0; i <= static_cast<int>(kMaxApprovals); ++i) {
        char d[65];
        std::snprintf(d, sizeof d, "%064x", i);
        many += "approved = " + std::string(d) + " aa bb 1\n";
    }
    refused(many, "more than 8 approvals");
}

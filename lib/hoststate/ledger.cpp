#include "hoststate/ledger.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>

#include "util/durable_file.hpp"
#include "util/key_value.hpp"
#include "util/uuid.hpp"

namespace vtpm::hoststate {

namespace {

Result<uint64_t> number(const std::string& v) {
    char* end = nullptr;
    errno = 0;
    const uint64_t n = std::strtoull(v.c_str(), &end, 10);
    if (errno != 0 || v.empty() || v[0] < '0' || v[0] > '9' || *end != '\0')
        return make_error(rc::kFail, "'" + v + "' is not a number");
    return n;
}

}  // namespace

Result<LedgerBook> parse_ledger_book(std::string_view text, const std::string& source) {
    auto lines = parse_key_values(text, source);
    if (!lines) return lines.error();
    LedgerBook b;
    bool have_counter = false;
    for (const auto& kv : *lines) {
        const std::string where = source + ":" + std::to_string(kv.line) + ": ";
        if (kv.key == "counter") {
            auto n = number(kv.value);
            if (!n || have_counter) return make_error(rc::kFail, where + "a bad or second counter line");
            b.counter = *n;
            have_counter = true;
        } else if (kv.key == "vm" || kv.key == "old") {
            const bool latest = kv.key == "vm";
            std::istringstream in(kv.value);
            std::string uuid, gen, root, state, extra;
            in >> uuid >> gen >> root;
            if (latest) in >> state;
            auto u = canonical_uuid(uuid);
            auto g = number(gen);
            auto r = from_hex(root);
            if (!u || *u != uuid || !g || !r || r->size() != 32 || (latest && state != "saved" && state != "restored") ||
                (in >> extra))
                return make_error(rc::kFail, where + (latest ? "not 'vm = UUID GENERATION ROOT saved|restored'"
                                                             : "not 'old = UUID GENERATION ROOT'"));
            LedgerEntry e;
            e.generation = *g;
            std::memcpy(e.root.data(), r->data(), 32);
            e.restored = state == "restored";
            if (!latest) {
                auto& h = b.history[uuid];
                if (!h.empty() && h.back().generation >= e.generation)
                    return make_error(rc::kFail, where + "history out of order");
                h.push_back(e);
            } else if (!b.vms.emplace(uuid, e).second) {
                return make_error(rc::kFail, where + "VM " + uuid + " twice");
            }
        } else if (kv.key == "identity") {
            std::istringstream in(kv.value);
            std::string uuid, gen, name, pending, extra;
            in >> uuid >> gen >> name >> pending;
            auto u = canonical_uuid(uuid);
            auto g = number(gen);
            auto n = name == "-" ? std::optional<Bytes>(Bytes{}) : from_hex(name);
            auto p = pending == "-" ? Result<uint64_t>(uint64_t{0}) : number(pending);
            if (!u || *u != uuid || !g || !n || (name != "-" && n->empty()) || !p || (in >> extra))
                return make_error(rc::kFail, where + "not 'identity = UUID GENERATION NAME|- PENDING|-'");
            IdentityRecord r{uuid, *g, std::move(*n), std::nullopt};
            if (pending != "-") r.pending = *p;
            if (!b.identities.emplace(uuid, std::move(r)).second)
                return make_error(rc::kFail, where + "identity of VM " + uuid + " twice");
        } else if (kv.key == "ek") {
            std::istringstream in(kv.value);
            std::string uuid, rsa, ec, extra;
            in >> uuid >> rsa >> ec;
            auto u = canonical_uuid(uuid);
            EkBinding e;
            bool ok = u && *u == uuid && !(in >> extra) && !(rsa == "-" && ec == "-");
            for (auto [text, slot] : {std::pair{&rsa, &e.rsa}, std::pair{&ec, &e.ec}}) {
                if (!ok || *text == "-") continue;
                auto d = from_hex(*text);
                ok = d && d->size() == 32;
                if (ok) std::memcpy(slot->emplace().data(), d->data(), 32);
            }
            if (!ok) return make_error(rc::kFail, where + "not 'ek = UUID RSA-SHA256|- ECC-SHA256|-'");
            if (!b.ek_bindings.emplace(uuid, e).second)
                return make_error(rc::kFail, where + "EK binding of VM " + uuid + " twice");
        } else if (kv.key == "ek_files") {
            if (kv.value != "imported" || b.ek_files_imported)
                return make_error(rc::kFail, where + "not a single 'ek_files = imported'");
            b.ek_files_imported = true;
        } else {
            return make_error(rc::kFail, where + "unknown key '" + kv.key + "'");
        }
    }
    if (!have_counter) return make_error(rc::kFail, source + " is damaged (no counter line)");
    return b;
}

std::string format_ledger_book(const LedgerBook& b) {
    std::string out = "counter = " + std::to_string(b.counter) + "\n";
    for (const auto& [uuid, e] : b.vms)
        out += "vm = " + uuid + " " + std::to_string(e.generation) + " " + to_hex(e.root) +
               (e.restored ? " restored\n" : " saved\n");
    for (const auto& [uuid, h] : b.history)
        for (const auto& e : h) out += "old = " + uuid + " " + std::to_string(e.generation) + " " + to_hex(e.root) + "\n";
    for (const auto& [uuid, r] : b.identities)
        out += "identity = " + uuid + " " + std::to_string(r.generation) + " " +
               (r.vaik_name.empty() ? std::string("-") : to_hex(r.vaik_name)) + " " +
               (r.pending ? std::to_string(*r.pending) : std::string("-")) + "\n";
    auto digest = [](const std::optional<Digest>& d) { return d ? to_hex(*d) : std::string("-"); };
    for (const auto& [uuid, e] : b.ek_bindings)
        if (e.rsa || e.ec) out += "ek = " + uuid + " " + digest(e.rsa) + " " + digest(e.ec) + "\n";
    if (b.ek_files_imported) out += "ek_files = imported\n";
    return out;
}

std::string Ledger::mac_line(std::string_view body) const {
    uint8_t mac[32];
    unsigned int n = 0;
    HMAC(EVP_sha256(), mac_key_.data(), static_cast<int>(mac_key_.size()),
         reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &n);
    return "mac = " + to_hex(ByteView(mac, n)) + "\n";
}

Result<bool> Ledger::load() {
    const std::string path = dir_ + "/" + kLedgerFile;
    auto raw = read_whole_file(path);
    if (!raw) {
        if (raw.code() == rc::kRetry) return false;
        return make_error(rc::kFail, path + ": " + raw.error().message);
    }
    const std::string_view text(reinterpret_cast<const char*>(raw->data()), raw->size());
    // The mac line is the last one and covers every byte before it.
    const size_t at = text.rfind("mac = ");
    if (at == std::string_view::npos || (at > 0 && text[at - 1] != '\n'))
        return make_error(rc::kFail, path + " has no MAC: it was not written by vtpm-hostd");
    const std::string want = mac_line(text.substr(0, at));
    if (CRYPTO_memcmp(want.data(), text.data() + at, std::min(want.size(), text.size() - at)) != 0 ||
        text.size() - at != want.size())
        return make_error(rc::kFail, path + ": the MAC does not verify: the ledger was edited, or it is another "
                                     "host's");
    auto b = parse_ledger_book(text.substr(0, at), path);
    if (!b) return b.error();
    book_ = std::move(*b);
    return true;
}

std::optional<LedgerEntry> Ledger::latest(const std::string& uuid) const {
    auto it = book_.vms.find(uuid);
    if (it == book_.vms.end()) return std::nullopt;
    return it->second;
}

Result<void> Ledger::save(const LedgerBook& b) const {
    std::string text = format_ledger_book(b);
    text += mac_line(text);
    const std::string path = dir_ + "/" + kLedgerFile;
    return replace_file_durably(path + ".tmp", path, ByteView(reinterpret_cast<const uint8_t*>(text.data()), text.size()),
                                0640);
}

Result<void> Ledger::replace_book(LedgerBook next, uint64_t counter) {
    next.counter = counter;
    if (auto w = save(next); !w) return w;
    book_ = std::move(next);
    return {};
}

uint64_t Ledger::next_generation(const std::string& uuid) const {
    uint64_t top = 0;
    if (auto it = book_.vms.find(uuid); it != book_.vms.end()) top = it->second.generation;
    if (auto it = book_.history.find(uuid); it != book_.history.end())
        for (const auto& e : it->second) top = std::max(top, e.generation);
    return top + 1;
}

namespace {

// `e` into the VM's history (sorted, no duplicates, the newest kept).
void remember(LedgerBook& b, const std::string& uuid, LedgerEntry e) {
    e.restored = false;
    auto& h = b.history[uuid];
    h.erase(std::remove_if(h.begin(), h.end(), [&e](const LedgerEntry& x) { return x.generation == e.generation; }),
            h.end());
    h.insert(std::upper_bound(h.begin(), h.end(), e,
                              [](const LedgerEntry& a, const LedgerEntry& x) { return a.generation < x.generation; }),
             e);
    if (h.size() > kLedgerHistory) h.erase(h.begin(), h.begin() + static_cast<ptrdiff_t>(h.size() - kLedgerHistory));
}

}  // namespace

Result<void> Ledger::consume(const std::string& uuid, uint64_t generation, const Digest& root, uint64_t counter) {
    auto it = book_.vms.find(uuid);
    if (it == book_.vms.end()) return make_error(rc::kFail, "VM " + uuid + " has no save in the ledger");
    const LedgerEntry& e = it->second;
    if (e.generation != generation || e.root != root)
        return make_error(rc::kFail, "VM " + uuid + ": generation " + std::to_string(generation) +
                                         " is not its latest save (" + std::to_string(e.generation) + ")");
    if (e.restored)
        return make_error(rc::kFail, "generation " + std::to_string(generation) + " of VM " + uuid +
                                         " was restored already");
    LedgerBook next = book_;
    next.vms[uuid].restored = true;
    return replace_book(std::move(next), counter);
}

Result<void> Ledger::revert(const std::string& uuid, uint64_t generation, uint64_t counter) {
    LedgerBook next = book_;
    std::optional<LedgerEntry> found;
    if (auto it = next.vms.find(uuid); it != next.vms.end() && it->second.generation == generation) found = it->second;
    if (auto it = next.history.find(uuid); !found && it != next.history.end())
        for (const auto& e : it->second)
            if (e.generation == generation) found = e;
    if (!found)
        return make_error(rc::kFail, "VM " + uuid + " has no save of generation " + std::to_string(generation) +
                                         " in the ledger (it keeps the latest and " +
                                         std::to_string(kLedgerHistory) + " before it)");
    if (auto it = next.vms.find(uuid); it != next.vms.end() && it->second.generation != generation)
        remember(next, uuid, it->second);
    found->restored = false;
    next.vms[uuid] = *found;
    auto& h = next.history[uuid];  // the latest is not history too
    h.erase(std::remove_if(h.begin(), h.end(), [generation](const LedgerEntry& x) { return x.generation == generation; }),
            h.end());
    if (h.empty()) next.history.erase(uuid);
    return replace_book(std::move(next), counter);
}

Result<void> Ledger::commit(const std::string& uuid, const LedgerEntry& e, uint64_t counter) {
    LedgerBook next = book_;
    if (auto it = next.vms.find(uuid); it != next.vms.end()) remember(next, uuid, it->second);
    next.vms[uuid] = e;
    return replace_book(std::move(next), counter);
}

std::optional<IdentityRecord> Ledger::identity(const std::string& uuid) const {
    auto it = book_.identities.find(uuid);
    if (it == book_.identities.end()) return std::nullopt;
    return it->second;
}

Result<void> Ledger::commit_identity(const IdentityRecord& r, uint64_t counter) {
    LedgerBook next = book_;
    next.identities[r.vm_uuid] = r;
    return replace_book(std::move(next), counter);
}

EkBinding Ledger::ek_binding(const std::string& uuid) const {
    auto it = book_.ek_bindings.find(uuid);
    return it == book_.ek_bindings.end() ? EkBinding{} : it->second;
}

Result<void> Ledger::commit_ek_binding(const std::string& uuid, const EkBinding& b, uint64_t counter) {
    LedgerBook next = book_;
    if (b.rsa || b.ec)
        next.ek_bindings[uuid] = b;
    else
        next.ek_bindings.erase(uuid);
    return replace_book(std::move(next), counter);
}

Result<void> Ledger::import_ek_files(const std::map<std::string, EkBinding>& files, uint64_t counter) {
    LedgerBook next = book_;
    for (const auto& [uuid, b] : files)
        if (b.rsa || b.ec) next.ek_bindings.emplace(uuid, b);  // never over one the ledger has
    next.ek_files_imported = true;
    return replace_book(std::move(next), counter);
}

Result<void> Ledger::create(uint64_t counter) {
    LedgerBook fresh;
    fresh.ek_files_imported = true;
    return replace_book(std::move(fresh), counter);
}

void Ledger::keep_leaves(const std::string& uuid, const std::vector<Digest>& leaves) const {
    const std::string vms = dir_ + "/vms";
    if (mkdir(vms.c_str(), 0750) != 0 && errno != EEXIST) return;
    const std::string path = vms + "/" + uuid + ".leaves", tmp = path + ".tmp";
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640));
    if (!fd) return;
    const auto* p = reinterpret_cast<const char*>(leaves.data());
    size_t left = leaves.size() * sizeof(Digest);
    while (left > 0) {
        const ssize_t n = ::write(fd.get(), p, left);
        if (n <= 0) {
            ::unlink(tmp.c_str());
            return;
        }
        p += n;
        left -= static_cast<size_t>(n);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) ::unlink(tmp.c_str());
}

std::optional<std::vector<Digest>> Ledger::leaves_for(const std::string& uuid, const Digest& root) const {
    auto raw = read_whole_file(dir_ + "/vms/" + uuid + ".leaves");
    if (!raw || raw->size() % sizeof(Digest) != 0) return std::nullopt;
    std::vector<Digest> leaves(raw->size() / sizeof(Digest));
    std::memcpy(leaves.data(), raw->data(), raw->size());
    if (merkle::merkle_root(leaves) != root) return std::nullopt;
    return leaves;
}

}  // namespace vtpm::hoststate

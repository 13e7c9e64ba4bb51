// Tests of a NATS bridge's messages (gateway/nats_messages.hpp), against libnats itself and
// without a server: what an export writes, libnats reads back as written; what the reader
// finds in a message is what libnats' own parser finds, for the plain form it parses itself
// and for every other form it leaves to libnats; nats_free() frees both kinds of message
// (the sanitizer builds' leak check sees any it does not).
#include "gateway/nats_messages.hpp"

#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

using namespace shmbus::gateway;

#if SHMBUS_NATS_ENCODED_HEADERS
// libnats' constructor of a received message, headers in front of the payload (the
// implementation uses it too; nats_messages.hpp says why).
// NOLINTBEGIN(readability-identifier-naming): libnats' names
extern "C" natsStatus natsMsg_create(natsMsg** newMsg, const char* subject, int subjLen,
                                     const char* reply, int replyLen, const char* buf, int bufLen,
                                     int hdrLen);
// NOLINTEND(readability-identifier-naming)
#endif

namespace {

/// A message destroyed at the end of the scope (libnats' collector frees it: the library is
/// opened first).
struct Msg {
    natsMsg* m{nullptr};
    Msg() { REQUIRE(nats_Open(-1) == NATS_OK); }
    Msg(const Msg&) = delete;
    Msg& operator=(const Msg&) = delete;
    ~Msg() { natsMsg_Destroy(m); }
};

/// libnats' own reading of `key` in `m`, or "(none)".
std::string libnats_value(natsMsg* m, const char* key) {
    const char* v = nullptr;
    return natsMsgHeader_Get(m, key, &v) == NATS_OK && v != nullptr ? std::string{v}
                                                                    : std::string{"(none)"};
}

std::string reader_value(NatsHeaderReader& r, const char* key) {
    const char* v = r.find(key);
    return v != nullptr ? std::string{v} : std::string{"(none)"};
}

std::vector<std::byte> payload_buffer(std::size_t room, std::string_view payload) {
    std::vector<std::byte> buf(room + payload.size());
    std::memcpy(buf.data() + room, payload.data(), payload.size());
    return buf;
}

std::string data_of(natsMsg* m) {
    return {natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m))};
}

} // namespace

TEST_CASE("nats_message: libnats reads back the headers and the payload written") {
    const std::string subject = "shmbus.robot1.telemetry";
    const std::string payload(300, 'p');
    const NatsHeader headers[] = {{"Shmbus-Origin", "robot1 17 telemetry 42"},
                                  {"Nats-Msg-Id", "robot1/17/telemetry/42"}};
    const std::size_t needed = nats_encoded_size(headers);
    CHECK(needed == std::string_view{"NATS/1.0\r\n"
                                     "Shmbus-Origin: robot1 17 telemetry 42\r\n"
                                     "Nats-Msg-Id: robot1/17/telemetry/42\r\n\r\n"}
                        .size());

    // Room to spare, exactly enough, and too little (then set through libnats' table).
    for (const std::size_t room : {needed + 64, needed, needed - 1, std::size_t{0}}) {
        CAPTURE(room);
        auto buf = payload_buffer(room, payload);
        Msg msg;
        REQUIRE(nats_message(&msg.m, subject, buf, room, payload.size(), headers) == NATS_OK);
        CHECK(std::string{natsMsg_GetSubject(msg.m)} == subject);
        CHECK(data_of(msg.m) == payload);
        CHECK(libnats_value(msg.m, "Shmbus-Origin") == "robot1 17 telemetry 42");
        CHECK(libnats_value(msg.m, "Nats-Msg-Id") == "robot1/17/telemetry/42");
        CHECK(libnats_value(msg.m, "Other") == "(none)");
    }

    SECTION("an empty payload") {
        auto buf = payload_buffer(needed, "");
        Msg msg;
        REQUIRE(nats_message(&msg.m, subject, buf, needed, 0, headers) == NATS_OK);
        CHECK(natsMsg_GetDataLength(msg.m) == 0);
        CHECK(libnats_value(msg.m, "Shmbus-Origin") == "robot1 17 telemetry 42");
    }
}

TEST_CASE("NatsHeaderReader finds what libnats' table holds, parsing libnats' encoding") {
    Msg msg;
    REQUIRE(natsMsg_Create(&msg.m, "s", nullptr, "x", 1) == NATS_OK);
    REQUIRE(natsMsgHeader_Set(msg.m, "Shmbus-Origin", "a 1 c 2") == NATS_OK);
    REQUIRE(natsMsgHeader_Set(msg.m, "Shmbus-Idle", "a 1 c 9") == NATS_OK);
    REQUIRE(natsMsgHeader_Add(msg.m, "Multi", "first") == NATS_OK);
    REQUIRE(natsMsgHeader_Add(msg.m, "Multi", "second") == NATS_OK);
    NatsHeaderReader reader;
    reader.read(msg.m);
    CHECK(reader.parsed_here() == nats_encoded_headers());
    CHECK(reader_value(reader, "Shmbus-Origin") == "a 1 c 2");
    CHECK(reader_value(reader, "Shmbus-Idle") == "a 1 c 9");
    CHECK(reader_value(reader, "Multi") == libnats_value(msg.m, "Multi"));
    CHECK(reader_value(reader, "shmbus-origin") == "(none)"); // keys are exact, as in libnats
    CHECK(reader_value(reader, "Absent") == "(none)");

    Msg bare;
    REQUIRE(natsMsg_Create(&bare.m, "s", nullptr, "x", 1) == NATS_OK);
    reader.read(bare.m);
    CHECK(reader_value(reader, "Shmbus-Origin") == "(none)");
}

#if SHMBUS_NATS_ENCODED_HEADERS
TEST_CASE("NatsHeaderReader reads received header blocks exactly as libnats does") {
    struct Case {
        const char* what;
        std::string block;
        bool plain; ///< parsed by the reader rather than left to libnats
    };
    const std::vector<Case> cases = {
        {"a bridge's own", "NATS/1.0\r\nShmbus-Origin: a 1 c 2\r\n\r\n", true},
        {"two headers", "NATS/1.0\r\nNats-Msg-Id: x\r\nShmbus-Origin: a 1 c 2\r\n\r\n", true},
        {"spaces around a value", "NATS/1.0\r\nShmbus-Origin: \t a 1 c 2  \r\n\r\n", true},
        {"no space after the colon", "NATS/1.0\r\nShmbus-Origin:a 1 c 2\r\n\r\n", true},
        {"a key twice", "NATS/1.0\r\nShmbus-Origin: first\r\nShmbus-Origin: second\r\n\r\n", true},
        {"spaces after the version", "NATS/1.0  \r\nShmbus-Origin: v\r\n\r\n", true},
        {"a status", "NATS/1.0 503\r\nShmbus-Origin: v\r\n\r\n", false},
        {"a status and a description", "NATS/1.0 408 Request Timeout\r\n\r\n", false},
        {"a folded line", "NATS/1.0\r\nShmbus-Origin: a 1\r\n c 2\r\n\r\n", false},
        {"a line without a colon", "NATS/1.0\r\nGarbage\r\nShmbus-Origin: v\r\n\r\n", false},
        {"an empty value", "NATS/1.0\r\nShmbus-Origin:\r\nOther: v\r\n\r\n", false},
        {"an empty key", "NATS/1.0\r\n: v\r\nShmbus-Origin: v\r\n\r\n", false},
        {"a lone LF", "NATS/1.0\r\nShmbus-Origin: a\nb\r\n\r\n", false},
        {"a lone CR", "NATS/1.0\r\nShmbus-Origin: a\rb\r\n\r\n", false},
        {"a lone LF ending the version", "NATS/1.0\nShmbus-Origin: v\r\n\r\n", false},
        {"a lone LF before a line's CRLF", "NATS/1.0\r\nShmbus-Origin: v\n\r\n\r\n", false},
        {"a CR as the last byte", "NATS/1.0\r\nShmbus-Origin: v\r\n\r", false},
        {"a NUL in the blank line", std::string{"NATS/1.0\r\nShmbus-Origin: v\r\n\0\r\n", 31},
         false},
        {"no blank line at the end", "NATS/1.0\r\nShmbus-Origin: v\r\n", false},
        {"a blank line before the end", "NATS/1.0\r\n\r\nShmbus-Origin: v\r\n\r\n", false},
        {"another version", "NATS/2.0\r\nShmbus-Origin: v\r\n\r\n", false},
        {"a NUL in a key", std::string{"NATS/1.0\r\nK\0ey: v\r\nShmbus-Origin: x\r\n\r\n", 39},
         false},
        {"a NUL in a value", std::string{"NATS/1.0\r\nShmbus-Origin: a\0b\r\n\r\n", 32}, false},
        {"too short", "NATS/1.0\r\n", false},
        {"more lines than a bridge writes",
         "NATS/1.0\r\n" +
             [] {
                 std::string lines;
                 for (int i = 0; i < 20; ++i) {
                     lines += "K" + std::to_string(i) + ": v\r\n";
                 }
                 return lines;
             }() +
             "Shmbus-Origin: v\r\n\r\n",
         false},
        {"a block longer than the reader's buffer",
         "NATS/1.0\r\nPadding: " + std::string(3000, 'x') + "\r\nShmbus-Origin: v\r\n\r\n", false},
    };
    const std::string payload = "payload";
    NatsHeaderReader reader;
    for (const auto& c : cases) {
        CAPTURE(c.what);
        const std::string bytes = c.block + payload;
        // Two copies: libnats' parser writes into the block it parses.
        Msg mine;
        Msg theirs;
        for (natsMsg** m : {&mine.m, &theirs.m}) {
            REQUIRE(natsMsg_create(m, "s", 1, nullptr, 0, bytes.data(),
                                   static_cast<int>(bytes.size()),
                                   static_cast<int>(c.block.size())) == NATS_OK);
        }
        reader.read(mine.m);
        CHECK(reader.parsed_here() == (c.plain && nats_encoded_headers()));
        for (const char* key : {"Shmbus-Origin", "Other", "Nats-Msg-Id", "Status", "K3"}) {
            CAPTURE(key);
            CHECK(reader_value(reader, key) == libnats_value(theirs.m, key));
        }
        CHECK(data_of(mine.m) == payload);
    }
}
#endif

TEST_CASE("nats_free frees a message made here and one that libnats has parsed") {
    REQUIRE(nats_Open(-1) == NATS_OK);
    const std::string subject = "shmbus.a";
    const NatsHeader headers[] = {{"Shmbus-Origin", "a 1 c 2"}};
    const std::size_t room = nats_encoded_size(headers);
    auto buf = payload_buffer(room, "payload");
    for (int i = 0; i < 3; ++i) {
        natsMsg* made = nullptr;
        REQUIRE(nats_message(&made, subject, buf, room, 7, headers) == NATS_OK);
        CHECK(data_of(made) == "payload");
        nats_free(made);
    }

    // Headers parsed into libnats' table (a lookup through libnats): freed with them.
    natsMsg* parsed = nullptr;
    REQUIRE(nats_message(&parsed, subject, buf, room, 7, headers) == NATS_OK);
    CHECK(libnats_value(parsed, "Shmbus-Origin") == "a 1 c 2");
    nats_free(parsed);
}

#if SHMBUS_NATS_ENCODED_HEADERS
TEST_CASE("NatsHeaderReader finds whole keys only") {
    // libnats 3.4 compares only the length of the key looked up once two keys' hashes agree:
    // looking up "K" in this block finds "KId"'s value there. The reader compares whole keys.
    const std::string block =
        "NATS/1.0\r\nShmbus-Origin: ros-Origin: \r\nKId: roy 21\r\nNats-Msg-Id: t1/17/42\r\n\r\n";
    const std::string bytes = block + "payload";
    Msg msg;
    REQUIRE(natsMsg_create(&msg.m, "s", 1, nullptr, 0, bytes.data(), static_cast<int>(bytes.size()),
                           static_cast<int>(block.size())) == NATS_OK);
    NatsHeaderReader reader;
    reader.read(msg.m);
    CHECK(reader.parsed_here() == nats_encoded_headers());
    CHECK(reader_value(reader, "KId") == "roy 21");
    CHECK(reader_value(reader, "Shmbus-Origin") == "ros-Origin:");
    if (reader.parsed_here()) {
        CHECK(reader_value(reader, "K") == "(none)");
        CHECK(reader_value(reader, "Shmbus") == "(none)");
    }
}
#endif

TEST_CASE("parse_origin reads the four fields of an origin and refuses anything else") {
    const auto f = parse_origin("robot1 17 camera/front 42");
    REQUIRE(f);
    CHECK(f->node == "robot1");
    CHECK(f->incarnation == 17);
    CHECK(f->channel == "camera/front");
    CHECK(f->number == 42);
    const auto largest = parse_origin("n 18446744073709551615 c 18446744073709551615");
    REQUIRE(largest);
    CHECK(largest->incarnation == UINT64_MAX);
    CHECK(largest->number == UINT64_MAX);

    for (const char* bad :
         {"", "robot1", "robot1 17", "robot1 17 c", "robot1 17 c ", "robot1 17 c 42 ",
          "robot1 17 c 42 extra", " robot1 17 c 42", "robot1  17 c 42", "robot1 17  c 42",
          "robot1 17 c  42", "robot1 x17 c 42", "robot1 17x c 42", "robot1 17 c 42x",
          "robot1 -17 c 42", "robot1 +17 c 42", "robot1 17 c -1",
          "robot1 18446744073709551616 c 42", "robot1 17 c 18446744073709551616"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_origin(bad));
    }
    CHECK_FALSE(parse_origin(nullptr));
}

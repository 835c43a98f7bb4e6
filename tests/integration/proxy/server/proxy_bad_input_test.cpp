// Bad and hostile input: the proxy answers with a clear error or drops that client only, says what
// Redis says where Redis has an answer, never reveals a backend address, and keeps serving others.
#include <random>
#include <string>
#include <vector>

#include "proxy_fixture.hpp"

namespace respite::test {
namespace {

using namespace std::chrono_literals;
using proxy::mode;

// Sends without throwing when the peer already closed (it may close while bytes are in flight).
void send_quietly(raw_conn& c, std::string_view bytes) {
    std::error_code ec;
    asio::write(c.socket(), asio::buffer(bytes), ec);
}

std::string printable(std::string_view bytes) {
    std::string out;
    for (unsigned char ch : bytes.substr(0, 60)) {
        if (ch == '\r')
            out += "\\r";
        else if (ch == '\n')
            out += "\\n";
        else if (ch < 0x20 || ch >= 0x7f)
            out +=
                "\\x" + std::string(1, "0123456789abcdef"[ch >> 4]) + "0123456789abcdef"[ch & 15];
        else
            out += static_cast<char>(ch);
    }
    if (bytes.size() > 60)
        out += "... (" + std::to_string(bytes.size()) + " bytes)";
    return out;
}

// Deterministic garbage: no '\n' (an inline line that never ends) and not starting with '*'.
std::string garbage(std::size_t n) {
    std::mt19937 gen(42);
    std::uniform_int_distribution<int> byte(0, 255);
    std::string out;
    out.reserve(n);
    while (out.size() < n) {
        const auto ch = static_cast<char>(byte(gen));
        if (ch == '\n' || (out.empty() && ch == '*'))
            continue;
        out += ch;
    }
    return out;
}

class proxy_bad_input : public proxy_fixture {
  protected:
    // In primary-only mode the secondary is idle: it is the "Redis itself" reference.
    void start_primary_only(const std::function<void(proxy::proxy_config&)>& tweak = {}) {
        start(mode::primary_only, tweak);
    }

    // A fresh client can still write and read through the proxy.
    void expect_serving(std::string_view after, std::string_view auth_password = {}) {
        raw_conn c(proxy_->port());
        if (!auth_password.empty()) {
            ASSERT_EQ(c.call({"AUTH", auth_password}), "+OK\r\n") << after;
        }
        const std::string key = "bi:" + std::to_string(++fresh_);
        EXPECT_EQ(c.call({"SET", key, "alive"}), "+OK\r\n") << "after " << after;
        EXPECT_EQ(c.call({"GET", key}), "$5\r\nalive\r\n") << "after " << after;
    }

    // Expects `bytes` to get this protocol error and the connection closed, from the proxy and
    // (when `same_as_redis`) with the same text as from Redis itself.
    void expect_protocol_error(std::string_view bytes, std::string_view expected,
                               bool same_as_redis = true) {
        SCOPED_TRACE("input: " + printable(bytes));
        raw_conn proxied(proxy_->port());
        send_quietly(proxied, bytes);
        const auto got = proxied.frame(5s);
        EXPECT_EQ(got, std::string(expected));
        EXPECT_TRUE(proxied.closed_by_peer()) << "the proxy kept the connection";
        if (same_as_redis) {
            raw_conn direct(secondary_.port());
            send_quietly(direct, bytes);
            const auto want = direct.frame(5s);
            EXPECT_EQ(got, want) << "Redis itself answers differently";
            EXPECT_TRUE(direct.closed_by_peer());
        }
    }

    // The same bytes get the same `n` frames through the proxy as from Redis; both stay open.
    void expect_same_as_redis(std::string_view bytes, std::size_t n) {
        SCOPED_TRACE("input: " + printable(bytes));
        raw_conn direct(secondary_.port());
        raw_conn proxied(proxy_->port());
        direct.send(bytes);
        proxied.send(bytes);
        for (std::size_t i = 0; i < n; ++i) {
            const auto want = direct.frame(5s);
            ASSERT_TRUE(want.has_value()) << "Redis itself sent no frame " << i;
            EXPECT_EQ(proxied.frame(5s), want) << "frame " << i;
        }
        EXPECT_EQ(direct.call({"PING"}), "+PONG\r\n");
        EXPECT_EQ(proxied.call({"PING"}), "+PONG\r\n");
    }

    int fresh_ = 0;
};

TEST_F(proxy_bad_input, malformed_resp_gets_redis_protocol_error_and_disconnects) {
    start_primary_only();
    raw_conn bystander(proxy_->port());
    ASSERT_EQ(bystander.call({"SET", "bi:bystander", "1"}), "+OK\r\n");

    expect_protocol_error("*abc\r\n", "-ERR Protocol error: invalid multibulk length\r\n");
    expect_protocol_error("*1\r\n$abc\r\n", "-ERR Protocol error: invalid bulk length\r\n");
    expect_protocol_error("*1\r\n$-3\r\n", "-ERR Protocol error: invalid bulk length\r\n");
    expect_protocol_error("*1\r\n$99999999999999999999\r\n",
                          "-ERR Protocol error: invalid bulk length\r\n");
    expect_protocol_error("*3000000000\r\n", "-ERR Protocol error: invalid multibulk length\r\n");
    expect_protocol_error("*\x01\xfe\xff\r\n", "-ERR Protocol error: invalid multibulk length\r\n");
    expect_protocol_error("SET a \"b\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n");
    expect_protocol_error("GET 'x\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n");
    // An inline line, or a count line, that never ends.
    expect_protocol_error(garbage(70 * 1024), "-ERR Protocol error: too big inline request\r\n");
    expect_protocol_error("*" + std::string(70 * 1024, '1'),
                          "-ERR Protocol error: too big mbulk count string\r\n");
    // A bulk argument that does not end with CRLF: Redis skips two bytes blindly, the proxy
    // refuses.
    expect_protocol_error("*1\r\n$4\r\nPINGXX\r\n",
                          "-ERR Protocol error: missing CRLF after bulk argument\r\n", false);

    EXPECT_EQ(bystander.call({"GET", "bi:bystander"}), "$1\r\n1\r\n");
    expect_serving("malformed RESP");
}

TEST_F(proxy_bad_input, an_element_that_is_not_a_bulk_string_gets_redis_error_text) {
    start_primary_only();
    // Redis: "Protocol error: expected '$', got ':'".
    expect_protocol_error("*2\r\n$3\r\nGET\r\n:5\r\n",
                          "-ERR Protocol error: expected '$', got ':'\r\n");
    expect_protocol_error("*1\r\nPING\r\n", "-ERR Protocol error: expected '$', got 'P'\r\n");
    expect_serving("a non-bulk element");
}

TEST_F(proxy_bad_input, odd_but_valid_input_is_handled_like_redis) {
    start_primary_only();
    // Empty and negative counts are skipped, blank inline lines too.
    expect_same_as_redis("*-5\r\n*0\r\n*1\r\n$4\r\nPING\r\n", 1);
    expect_same_as_redis("\r\n\n  \r\nPING\r\n", 1);
    // Looks like a bulk header, is an inline command nobody knows.
    expect_same_as_redis("$abc\r\n", 1);
    expect_same_as_redis("*1\r\n$0\r\n\r\n", 1);
    expect_serving("odd input");
}

TEST_F(proxy_bad_input, inline_commands_work) {
    start_primary_only();
    expect_same_as_redis("PING\r\n", 1);
    expect_same_as_redis("PING\n", 1);
    expect_same_as_redis("SET bi:a \"b c\"\r\nGET bi:a\r\n", 2);
    expect_same_as_redis("SET bi:e \"\\x41\\n\"\r\nGET bi:e\r\nSTRLEN bi:e\r\n", 3);
    expect_same_as_redis("ECHO 'x y'\r\nECHO \"\"\r\n", 2);
    // Inline and RESP mixed in one pipeline keep their order.
    expect_same_as_redis("INCR bi:n\r\n*2\r\n$4\r\nINCR\r\n$4\r\nbi:n\r\nGET bi:n\r\n", 3);

    raw_conn c(proxy_->port());
    c.send("SET bi:inline \"b c\"\r\n");
    EXPECT_EQ(c.frame(), "+OK\r\n");
    EXPECT_EQ(c.call({"GET", "bi:inline"}), "$3\r\nb c\r\n");
}

TEST_F(proxy_bad_input, an_oversized_bulk_argument_is_refused) {
    start_primary_only([](proxy::proxy_config& cfg) { cfg.max_bulk = 1024; });
    raw_conn bystander(proxy_->port());
    ASSERT_EQ(bystander.call({"PING"}), "+PONG\r\n");

    raw_conn ok(proxy_->port());
    const std::string at_limit(1024, 'v');
    EXPECT_EQ(ok.call({"SET", "bi:big", at_limit}), "+OK\r\n");

    const std::string over(2048, 'v');
    const std::string bytes = "*3\r\n$3\r\nSET\r\n$6\r\nbi:big\r\n$2048\r\n" + over + "\r\n";
    expect_protocol_error(bytes, "-ERR Protocol error: invalid bulk length\r\n", false);
    // Refused from the header alone: the payload need not arrive.
    expect_protocol_error("*3\r\n$3\r\nSET\r\n$6\r\nbi:big\r\n$2048\r\n",
                          "-ERR Protocol error: invalid bulk length\r\n", false);

    EXPECT_EQ(bystander.call({"STRLEN", "bi:big"}), ":1024\r\n");
    expect_serving("an oversized bulk");
}

TEST_F(proxy_bad_input, an_oversized_array_is_refused) {
    start_primary_only([](proxy::proxy_config& cfg) { cfg.max_args = 16; });
    raw_conn bystander(proxy_->port());
    ASSERT_EQ(bystander.call({"PING"}), "+PONG\r\n");

    // 16 elements are fine.
    std::string del = "*16\r\n$3\r\nDEL\r\n";
    for (int i = 0; i < 15; ++i)
        del += "$4\r\nbi:" + std::string(1, static_cast<char>('a' + i)) + "\r\n";
    raw_conn ok(proxy_->port());
    ok.send(del);
    EXPECT_EQ(ok.frame(), ":0\r\n");

    expect_protocol_error("*17\r\n", "-ERR Protocol error: invalid multibulk length\r\n", false);
    expect_protocol_error("*1000000\r\n$3\r\nDEL\r\n",
                          "-ERR Protocol error: invalid multibulk length\r\n", false);

    EXPECT_EQ(bystander.call({"PING"}), "+PONG\r\n");
    expect_serving("an oversized array");
}

TEST_F(proxy_bad_input, a_half_sent_command_does_not_block_other_clients) {
    start_primary_only([](proxy::proxy_config& cfg) { cfg.threads = 1; });
    raw_conn half_header(proxy_->port());
    raw_conn half_payload(proxy_->port());
    half_header.send("*3\r\n$3\r\nSET\r\n$5\r\nbi:h1\r\n$");
    half_payload.send("*3\r\n$3\r\nSET\r\n$5\r\nbi:h2\r\n$10\r\n01234");

    // Same worker, not held up.
    for (int i = 0; i < 5; ++i)
        expect_serving("a half-sent command");

    // The rest arrives late: the commands complete.
    half_header.send("1\r\nx\r\n");
    EXPECT_EQ(half_header.frame(), "+OK\r\n");
    half_payload.send("56789\r\n");
    EXPECT_EQ(half_payload.frame(), "+OK\r\n");
    EXPECT_EQ(half_payload.call({"GET", "bi:h2"}), "$10\r\n0123456789\r\n");
}

TEST_F(proxy_bad_input, idle_clients_are_closed_after_the_timeout_and_subscribers_are_not) {
    start_primary_only([](proxy::proxy_config& cfg) {
        cfg.threads = 1;
        cfg.idle_timeout = 1s;
    });
    const auto t0 = std::chrono::steady_clock::now();
    raw_conn idle(proxy_->port());
    raw_conn half_open(proxy_->port());
    raw_conn subscriber(proxy_->port());
    raw_conn active(proxy_->port());
    half_open.send("*2\r\n$3\r\nGET\r\n$2\r\nbi");
    ASSERT_EQ(subscriber.call({"SUBSCRIBE", "bi:idle"}),
              "*3\r\n$9\r\nsubscribe\r\n$7\r\nbi:idle\r\n:1\r\n");

    // `active` keeps talking while the idle one waits to be closed.
    bool active_ok = true;
    const bool idle_closed = eventually(
        [&] {
            active_ok = active_ok && active.call({"PING"}) == "+PONG\r\n";
            return idle.closed_by_peer(50ms);
        },
        5s);
    EXPECT_TRUE(idle_closed) << "an idle client was not closed within 5 s (timeout 1 s)";
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 900ms) << "closed before the timeout";
    // `active` keeps talking here too: it would otherwise be idle for longer than the timeout.
    const bool half_open_closed = eventually(
        [&] {
            active_ok = active_ok && active.call({"PING"}) == "+PONG\r\n";
            return half_open.closed_by_peer(50ms);
        },
        3s);
    EXPECT_TRUE(half_open_closed) << "a half-sent command keeps a client open";
    EXPECT_TRUE(active_ok);
    EXPECT_EQ(active.call({"PING"}), "+PONG\r\n");
    // Like Redis, a subscriber is not idle.
    EXPECT_EQ(subscriber.call({"PING"}), "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    expect_serving("idle clients were closed");
}

// Like Redis, a client counts as active while it takes its replies, not while a reply it does
// not read sits in its socket: such a client is closed after the idle timeout too.
TEST_F(proxy_bad_input, a_client_that_does_not_read_its_reply_goes_idle) {
    start_primary_only([](proxy::proxy_config& cfg) {
        cfg.threads = 1;
        cfg.idle_timeout = 1s;
    });
    primary_.cli({"SETRANGE", "bi:big", std::to_string((8 << 20) - 1), "x"});  // 8 MiB
    raw_conn stuck(proxy_->port());
    for (int i = 0; i < 4; ++i)
        stuck.command({"GET", "bi:big"});  // and never read (nothing here reads its socket)
    raw_conn active(proxy_->port());
    ASSERT_EQ(active.call({"PING"}), "+PONG\r\n");
    ASSERT_EQ(info_field("connected_clients"), "2");
    bool active_ok = true;
    const bool closed = eventually(
        [&] {
            active_ok = active_ok && active.call({"PING"}) == "+PONG\r\n";
            return info_field("connected_clients") == "1";
        },
        8s);
    EXPECT_TRUE(closed) << "a client whose write makes no progress was never closed";
    EXPECT_TRUE(active_ok);
    expect_serving("a stuck reader was closed");
}

TEST_F(proxy_bad_input, max_clients_rejects_the_next_connection_until_one_leaves) {
    start_primary_only([](proxy::proxy_config& cfg) { cfg.max_clients = 3; });
    std::vector<std::unique_ptr<raw_conn>> clients;
    for (int i = 0; i < 3; ++i) {
        clients.push_back(std::make_unique<raw_conn>(proxy_->port()));
        ASSERT_EQ(clients.back()->call({"PING"}), "+PONG\r\n");
    }
    raw_conn fourth(proxy_->port());
    EXPECT_EQ(fourth.frame(), "-ERR max number of clients reached\r\n");
    EXPECT_TRUE(fourth.closed_by_peer());
    EXPECT_EQ(clients[0]->call({"PING"}), "+PONG\r\n");

    clients[0]->close();
    std::string last;
    const bool accepted = eventually(
        [&] {
            auto c = std::make_unique<raw_conn>(proxy_->port());
            send_quietly(*c, "PING\r\n");
            last = c->frame(2s).value_or("<closed>");
            if (last != "+PONG\r\n")
                return false;
            clients[0] = std::move(c);
            return true;
        },
        5s);
    ASSERT_TRUE(accepted) << "after a client left, a new one still gets " << last;
    EXPECT_EQ(clients[1]->call({"PING"}), "+PONG\r\n");
}

TEST_F(proxy_bad_input, auth_is_required_and_answered_like_redis) {
    redis_server_options opts;
    opts.requirepass = "pw";
    opts.acl_users = {"alice on >apw ~* &* +@all"};
    redis_server reference(opts);
    start_primary_only([](proxy::proxy_config& cfg) {
        cfg.users = {{"default", "pw"}, {"alice", "apw"}};
    });

    // Each script runs on a fresh connection to both; every reply is compared.
    auto same = [&](std::vector<std::vector<std::string>> script) {
        raw_conn direct(reference.port());
        raw_conn proxied(proxy_->port());
        for (const auto& cmd : script) {
            std::string out = "*" + std::to_string(cmd.size()) + "\r\n";
            for (const auto& a : cmd)
                out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
            direct.send(out);
            proxied.send(out);
            const auto want = direct.frame(5s);
            const auto got = proxied.frame(5s);
            ASSERT_TRUE(want.has_value()) << cmd[0];
            EXPECT_EQ(got, want) << printable(out);
        }
    };
    same({{"GET", "bi:k"}, {"SET", "bi:k", "v"}, {"PING"}, {"QUIT"}});
    same(
        {{"AUTH", "wrong"}, {"AUTH", "alice", "wrong"}, {"AUTH", "nobody", "pw"}, {"GET", "bi:k"}});
    same({{"HELLO", "3", "AUTH", "alice", "wrong"}, {"GET", "bi:k"}});
    same({{"AUTH", "pw"}, {"SET", "bi:k", "v"}, {"GET", "bi:k"}});
    same({{"AUTH", "alice", "apw"}, {"GET", "bi:k"}});

    // Before AUTH, Redis names an unknown command, an unknown subcommand or a wrong argument
    // count first (the proxy answered NOAUTH to them all); HELLO's own NOAUTH text.
    same({{"FOO", "a", "b"},
          {"FOO", std::string(200, 'x'), "b"},
          {"GET"},
          {"CONFIG"},
          {"CONFIG", "NOPE"},
          {"CONFIG", "GET"},
          {"AUTH"},
          {"HELLO", "3"},
          {"HELLO"},
          {"CLIENT", "LIST"},
          {"GET", "bi:k"}});

    raw_conn hello(proxy_->port());
    hello.command({"HELLO", "3", "AUTH", "alice", "apw"});
    const auto map = hello.frame().value_or("");
    EXPECT_EQ(map.substr(0, 31), "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\n");
    EXPECT_EQ(hello.call({"GET", "bi:k"}), "$1\r\nv\r\n");

    expect_serving("AUTH failures", "pw");
}

// Without a password, AUTH answers as Redis does: clients configured with user "default" and
// some password connect (they got the no-password error for the two-argument form too).
TEST_F(proxy_bad_input, auth_without_a_password_answers_like_redis) {
    start_primary_only();
    raw_conn proxy(proxy_->port());
    raw_conn redis(primary_.port());
    for (const auto& cmd : std::vector<std::vector<std::string_view>>{{"AUTH", "x"},
                                                                      {"AUTH", "default", "x"},
                                                                      {"AUTH", "bob", "x"},
                                                                      {"AUTH", "a", "b", "c"}}) {
        redis.command(cmd);
        proxy.command(cmd);
        EXPECT_EQ(proxy.frame(), redis.frame()) << cmd[1];
    }
    EXPECT_EQ(proxy.call({"PING"}), "+PONG\r\n");
    // Arity and range errors of the commands the proxy answers itself, as the server's.
    for (const auto& cmd : std::vector<std::vector<std::string_view>>{{"CLIENT", "ID", "x"},
                                                                      {"CLIENT", "GETNAME", "x"},
                                                                      {"CLIENT", "INFO", "x"},
                                                                      {"SELECT", "-1"},
                                                                      {"SELECT", "x"}}) {
        redis.command(cmd);
        proxy.command(cmd);
        EXPECT_EQ(proxy.frame(), redis.frame()) << cmd[0] << " " << cmd[1];
    }
}

// RESET is one of the commands Redis runs before AUTH.
TEST_F(proxy_bad_input, reset_needs_no_auth) {
    start_primary_only([](proxy::proxy_config& cfg) { cfg.users = {{"default", "pw"}}; });
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"RESET"}), "+RESET\r\n");
    EXPECT_EQ(c.call({"GET", "k"}).substr(0, 7), "-NOAUTH");
}

TEST_F(proxy_bad_input, config_keeps_the_backends_credentials_behind_the_proxy) {
    // CONFIG GET requirepass / masterauth through the proxy returned the backend's secrets, and
    // CONFIG SET requirepass would lock the proxy out of its own backend.
    start_primary_only();
    ASSERT_EQ(primary_.cli({"CONFIG", "SET", "masterauth", "s3cret-auth"}), "OK");
    for (int proto : {2, 3}) {
        raw_conn c(proxy_->port());
        if (proto == 3) {
            ASSERT_EQ(c.call({"HELLO", "3"}).substr(0, 1), "%");
        }
        EXPECT_EQ(c.call({"CONFIG", "GET", "masterauth"}), proto == 3 ? "%0\r\n" : "*0\r\n");
        const auto all = c.call({"CONFIG", "GET", "*"});
        EXPECT_EQ(all.find("s3cret-auth"), std::string::npos);
        EXPECT_EQ(all.find("requirepass"), std::string::npos);
        EXPECT_NE(all.find("maxmemory-policy"), std::string::npos);
        const auto one = c.call({"CONFIG", "GET", "maxmemory-policy"});
        EXPECT_NE(one.find("noeviction"), std::string::npos) << one;
    }
    raw_conn c(proxy_->port());
    EXPECT_NE(
        c.call({"CONFIG", "SET", "requirepass", "x"}).find("-ERR proxy: CONFIG SET requirepass"),
        std::string::npos);
    EXPECT_EQ(c.call({"CONFIG", "SET", "maxmemory-policy", "noeviction"}), "+OK\r\n");
    EXPECT_EQ(c.call({"MULTI"}), "+OK\r\n");
    EXPECT_NE(c.call({"CONFIG", "GET", "masterauth"}).find("-ERR proxy: CONFIG GET inside MULTI"),
              std::string::npos);
    EXPECT_EQ(c.call({"EXEC"}), "-EXECABORT Transaction discarded because of previous errors.\r\n");
    expect_serving("CONFIG through the proxy");
}

TEST_F(proxy_bad_input, config_and_info_give_the_proxys_own_address) {
    // CONFIG GET port/bind and INFO's tcp_port gave the backend's address: a client (or a tool
    // that reconnects to what the server says its port is) went around the proxy.
    start_primary_only();
    const auto own_port = std::to_string(proxy_->port());
    const auto backend_port = std::to_string(primary_.port());
    ASSERT_NE(own_port, backend_port);
    // The backend's bind differs from the proxy's listen address (127.0.0.1).
    ASSERT_EQ(primary_.cli({"CONFIG", "SET", "bind", "127.0.0.1 -::1"}), "OK");
    for (int proto : {2, 3}) {
        raw_conn c(proxy_->port());
        if (proto == 3) {
            ASSERT_EQ(c.call({"HELLO", "3"}).substr(0, 1), "%");
        }
        const auto port = c.call({"CONFIG", "GET", "port"});
        EXPECT_EQ(port, (proto == 3 ? "%1\r\n" : "*2\r\n") + std::string("$4\r\nport\r\n$") +
                            std::to_string(own_port.size()) + "\r\n" + own_port + "\r\n");
        const auto bind = c.call({"CONFIG", "GET", "bind"});
        EXPECT_NE(bind.find("$9\r\n127.0.0.1\r\n"), std::string::npos) << bind;
        const auto all = c.call({"CONFIG", "GET", "*"});
        EXPECT_NE(all.find("$4\r\nport\r\n$" + std::to_string(own_port.size()) + "\r\n" + own_port +
                           "\r\n"),
                  std::string::npos);
        EXPECT_NE(all.find("$8\r\ntls-port\r\n$1\r\n0\r\n"), std::string::npos);
        const auto info = c.call({"INFO", "server"});
        EXPECT_NE(info.find("\r\ntcp_port:" + own_port + "\r\n"), std::string::npos) << info;
        EXPECT_EQ(info.find("tcp_port:" + backend_port), std::string::npos) << info;
        // The whole INFO too (the field is found wherever the section is).
        const auto everything = c.call({"INFO"});
        EXPECT_NE(everything.find("\r\ntcp_port:" + own_port + "\r\n"), std::string::npos);
        // INFO inside MULTI: its reply comes back in EXEC's array, rewritten there too; the
        // other elements are untouched.
        ASSERT_EQ(c.call({"MULTI"}), "+OK\r\n");
        ASSERT_EQ(c.call({"PING"}), "+QUEUED\r\n");
        ASSERT_EQ(c.call({"INFO", "server"}), "+QUEUED\r\n");
        ASSERT_EQ(c.call({"SET", "k", "v"}), "+QUEUED\r\n");
        ASSERT_EQ(c.call({"INFO"}), "+QUEUED\r\n");
        ASSERT_EQ(c.call({"GET", "k"}), "+QUEUED\r\n");
        const auto exec = c.call({"EXEC"});
        ASSERT_TRUE(exec.starts_with("*5\r\n+PONG\r\n")) << exec;
        const auto first = exec.find("\r\ntcp_port:" + own_port + "\r\n");
        ASSERT_NE(first, std::string::npos) << exec;
        EXPECT_NE(exec.find("\r\ntcp_port:" + own_port + "\r\n", first + 1), std::string::npos);
        EXPECT_EQ(exec.find("tcp_port:" + backend_port), std::string::npos);
        EXPECT_NE(exec.find("\r\n+OK\r\n"), std::string::npos);
        EXPECT_TRUE(exec.ends_with("\r\n$1\r\nv\r\n")) << exec;
    }
    expect_serving("CONFIG GET port and INFO server");
}

TEST_F(proxy_bad_input, only_admin_users_change_the_proxy) {
    // Every application user could switch the mode or start a SYNC PRUNE.
    start_primary_only([](proxy::proxy_config& cfg) {
        cfg.users = {{"default", "pw"}, {"ops", "opw"}};
        cfg.admin_users = {"ops"};
    });
    raw_conn app(proxy_->port());
    EXPECT_EQ(app.call({"AUTH", "pw"}), "+OK\r\n");
    EXPECT_EQ(app.call({"PROXY", "MODE", "GET"}), "$12\r\nprimary-only\r\n");
    EXPECT_EQ(app.call({"PROXY", "MODE", "SET", "primary-only"}).substr(0, 7), "-NOPERM");
    EXPECT_EQ(app.call({"PROXY", "SHADOW", "PERCENT", "5"}).substr(0, 7), "-NOPERM");
    EXPECT_EQ(app.call({"PROXY", "REPAIR", "RATE", "0"}).substr(0, 7), "-NOPERM");
    EXPECT_EQ(app.call({"PROXY", "SYNC", "START", "PRUNE"}).substr(0, 7), "-NOPERM");
    EXPECT_NE(app.call({"PROXY", "SYNC", "STATUS"}).substr(0, 7), "-NOPERM");
    // Other users' connections: listed and closed by admin users only.
    EXPECT_EQ(app.call({"CLIENT", "KILL", "TYPE", "normal"}).substr(0, 7), "-NOPERM");
    EXPECT_EQ(app.call({"CLIENT", "LIST"}).substr(0, 7), "-NOPERM");
    EXPECT_EQ(app.call({"CLIENT", "INFO"}).substr(0, 1), "$");  // its own line
    raw_conn ops(proxy_->port());
    EXPECT_EQ(ops.call({"AUTH", "ops", "opw"}), "+OK\r\n");
    EXPECT_EQ(ops.call({"CLIENT", "LIST"}).substr(0, 1), "$");
    EXPECT_EQ(ops.call({"PROXY", "MODE", "SET", "primary-only"}), "+OK\r\n");
    // RESET logs out: the admin rights go with it.
    EXPECT_EQ(ops.call({"RESET"}), "+RESET\r\n");
    EXPECT_EQ(ops.call({"AUTH", "pw"}), "+OK\r\n");
    EXPECT_EQ(ops.call({"PROXY", "MODE", "SET", "primary-only"}).substr(0, 7), "-NOPERM");
}

TEST_F(proxy_bad_input, commands_on_the_whole_backend_server_are_for_named_admin_users) {
    // SHUTDOWN through the proxy stopped the primary every client uses; CLIENT PAUSE paused the
    // proxy's own connections (and its follower); DEBUG SLEEP froze the backend for everyone.
    start_primary_only([](proxy::proxy_config& cfg) {
        cfg.users = {{"default", "pw"}, {"ops", "opw"}};
        cfg.admin_users = {"ops"};
    });
    ASSERT_EQ(primary_.cli({"SET", "bw:k", "v"}), "OK");
    raw_conn app(proxy_->port());
    EXPECT_EQ(app.call({"AUTH", "pw"}), "+OK\r\n");
    const auto refused = [&](std::initializer_list<std::string_view> cmd, std::string_view what) {
        const auto r = app.call(cmd);
        EXPECT_EQ(r.substr(0, 19 + what.size()), "-ERR proxy: '" + std::string(what) + "' acts")
            << r;
    };
    refused({"SHUTDOWN", "NOSAVE"}, "shutdown");
    refused({"shutdown"}, "shutdown");
    refused({"CLIENT", "PAUSE", "10000"}, "client|pause");
    refused({"client", "unpause"}, "client|unpause");
    refused({"DEBUG", "SLEEP", "5"}, "debug");
    refused({"DEBUG", "RELOAD"}, "debug");
    refused({"REPLICAOF", "127.0.0.1", "1"}, "replicaof");
    refused({"SLAVEOF", "NO", "ONE"}, "slaveof");
    refused({"FAILOVER"}, "failover");
    refused({"PSYNC", "?", "-1"}, "psync");
    // Limits that would make the backend cut or refuse the proxy's own shared connections, and
    // the users' password hashes (the proxy's backend user's too).
    refused({"CONFIG", "SET", "client-output-buffer-limit", "normal 10000 0 0"},
            "config|set client-output-buffer-limit");
    refused({"CONFIG", "SET", "maxclients", "1"}, "config|set maxclients");
    refused({"config", "set", "hz", "10", "TIMEOUT", "1"}, "config|set timeout");
    refused({"CONFIG", "REWRITE"}, "config|rewrite");
    refused({"ACL", "LIST"}, "acl|list");
    refused({"ACL", "GETUSER", "default"}, "acl|getuser");
    EXPECT_EQ(app.call({"CONFIG", "SET", "notify-keyspace-events", "KEA"}), "+OK\r\n");
    // MONITOR shows every client's commands: admin users only, as CLIENT LIST.
    EXPECT_EQ(app.call({"MONITOR"}).substr(0, 7), "-NOPERM");
    // The backend is up, not paused, still a master.
    EXPECT_EQ(primary_.cli({"PING"}), "PONG");
    EXPECT_NE(primary_.cli({"INFO", "replication"}).find("role:master"), std::string::npos);
    EXPECT_EQ(app.call({"GET", "bw:k"}), "$1\r\nv\r\n");
    // DEBUG's read-only subcommands go through.
    EXPECT_EQ(app.call({"DEBUG", "DIGEST-VALUE", "bw:k"}),
              "*1\r\n+" + primary_.cli({"DEBUG", "DIGEST-VALUE", "bw:k"}) + "\r\n");
    // Inside MULTI: refused, and EXEC aborts (queued, it would run on the backend).
    EXPECT_EQ(app.call({"MULTI"}), "+OK\r\n");
    refused({"CLIENT", "PAUSE", "10000"}, "client|pause");
    EXPECT_EQ(app.call({"EXEC"}),
              "-EXECABORT Transaction discarded because of previous errors.\r\n");
    // A user named by --admin-user sends them on.
    raw_conn ops(proxy_->port());
    EXPECT_EQ(ops.call({"AUTH", "ops", "opw"}), "+OK\r\n");
    EXPECT_EQ(ops.call({"DEBUG", "SLEEP", "0"}), "+OK\r\n");
    EXPECT_EQ(ops.call({"CLIENT", "UNPAUSE"}), "+OK\r\n");
    EXPECT_EQ(ops.call({"ACL", "GETUSER", "nobody"}), "$-1\r\n");
    EXPECT_EQ(ops.call({"MONITOR"}), "+OK\r\n");
    expect_serving("backend-wide commands", "pw");
}

TEST_F(proxy_bad_input, without_a_named_admin_user_nobody_sends_backend_wide_commands) {
    start_primary_only();
    raw_conn c(proxy_->port());
    // Cluster commands get a standalone Redis's answer; inside MULTI the backend queues them.
    const std::string disabled = "-ERR This instance has cluster support disabled\r\n";
    EXPECT_EQ(c.call({"READONLY"}), disabled);
    EXPECT_EQ(c.call({"CLUSTER", "RESET"}), disabled);
    EXPECT_EQ(c.call({"MULTI"}), "+OK\r\n");
    EXPECT_EQ(c.call({"CLUSTER", "INFO"}), "+QUEUED\r\n");
    EXPECT_EQ(c.call({"INFO", "server"}), "+QUEUED\r\n");
    const auto exec = c.call({"EXEC"});
    EXPECT_EQ(exec.substr(0, 4 + disabled.size()), "*2\r\n" + disabled) << exec;
    EXPECT_NE(exec.find("redis_mode:standalone"), std::string::npos) << exec;
    EXPECT_EQ(c.call({"DEBUG", "SLEEP", "0"}).substr(0, 20), "-ERR proxy: 'debug' ");
    EXPECT_EQ(c.call({"SHUTDOWN"}).substr(0, 23), "-ERR proxy: 'shutdown' ");
    EXPECT_EQ(primary_.cli({"PING"}), "PONG");
    EXPECT_EQ(c.call({"DEBUG", "OBJECT", "nokey"}), "-ERR no such key\r\n");
}

TEST_F(proxy_bad_input, before_auth_requests_are_small) {
    // As Redis: until AUTH, at most 10 arguments of at most 16 KiB. Before, a client without the
    // password could make the proxy buffer a 512 MB argument (per connection).
    start_primary_only([](proxy::proxy_config& cfg) { cfg.users = {{"default", "pw"}}; });
    const std::string big(20 * 1024, 'v');
    // Redis's words (checked against redis-server 7.0 with requirepass).
    const std::string too_large = "-ERR Protocol error: unauthenticated bulk length\r\n";
    // Refused from the header: the 20 KiB payload need not arrive.
    expect_protocol_error("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$20480\r\n", too_large, false);
    std::string eleven = "*11\r\n";
    expect_protocol_error(eleven, "-ERR Protocol error: unauthenticated multibulk length\r\n",
                          false);
    // Small requests get NOAUTH as before; after AUTH the usual limits apply.
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"GET", "k"}).substr(0, 7), "-NOAUTH");
    EXPECT_EQ(c.call({"AUTH", "pw"}), "+OK\r\n");
    EXPECT_EQ(c.call({"SET", "k", big}), "+OK\r\n");
    EXPECT_EQ(c.call({"DEL", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"}), ":1\r\n");
    // RESET logs the connection out: small requests again.
    EXPECT_EQ(c.call({"RESET"}), "+RESET\r\n");
    c.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$20480\r\n");
    EXPECT_EQ(c.frame(5s), too_large);
    expect_serving("unauthenticated oversized requests", "pw");
}

// Blank lines and empty arrays (which Redis skips) are not kept: 200 MiB of "\r\n" from a
// client that never authenticated took the proxy from 22 to 222 MiB, up to the query limit.
TEST_F(proxy_bad_input, skipped_blank_lines_and_empty_arrays_are_not_buffered) {
    start_primary_only([](proxy::proxy_config& cfg) { cfg.users = {{"default", "pw"}}; });
    raw_conn c(proxy_->port());
    const std::string blanks(256 * 1024, '\n');
    std::string empties;
    for (int i = 0; i < 32 * 1024; ++i)
        empties += i % 2 == 0 ? "*0\r\n" : "\r\n*-1\r\n";
    for (int i = 0; i < 16; ++i)
        c.send(i % 2 == 0 ? blanks : empties);
    c.send("*1\r\n$4\r\nPI");  // a request begun after them
    raw_conn admin(proxy_->port());
    ASSERT_EQ(admin.call({"AUTH", "pw"}), "+OK\r\n");
    // Every byte sent has been read once the half request shows in the client's buffer.
    std::string list;
    ASSERT_TRUE(eventually([&] {
        list = admin.call({"CLIENT", "LIST"});
        return list.find(" qbuf=10 ") != std::string::npos;
    })) << list;
    c.send("NG\r\n");
    EXPECT_EQ(c.frame(5s).value_or("").substr(0, 7), "-NOAUTH");
    EXPECT_EQ(c.call({"AUTH", "pw"}), "+OK\r\n");
    EXPECT_EQ(c.call({"PING"}), "+PONG\r\n");
}

TEST_F(proxy_bad_input, auth_with_too_many_arguments_is_a_syntax_error_like_redis) {
    start_primary_only([](proxy::proxy_config& cfg) { cfg.users = {{"default", "pw"}}; });
    raw_conn direct(secondary_.port());
    raw_conn proxied(proxy_->port());
    EXPECT_EQ(direct.call({"AUTH", "a", "b", "c"}), "-ERR syntax error\r\n");
    EXPECT_EQ(proxied.call({"AUTH", "a", "b", "c"}), "-ERR syntax error\r\n");
    EXPECT_EQ(proxied.call({"AUTH", "pw"}), "+OK\r\n");
}

TEST_F(proxy_bad_input, errors_never_reveal_backend_addresses) {
    // One worker: once it reconnected, every new client is served (each worker waits a moment
    // after a failed connect before it tries again).
    start_primary_only([](proxy::proxy_config& cfg) { cfg.threads = 1; });
    raw_conn before(proxy_->port());
    ASSERT_EQ(before.call({"SET", "bi:addr", "1"}), "+OK\r\n");

    primary_.stop();
    const auto port = std::to_string(primary_.port());
    auto check = [&](raw_conn& c, std::initializer_list<std::string_view> cmd) {
        const auto reply = c.call(cmd);
        SCOPED_TRACE(std::string(*cmd.begin()) + " -> " + printable(reply));
        EXPECT_EQ(reply.substr(0, 1), "-");
        EXPECT_EQ(reply.find(port), std::string::npos);
        EXPECT_EQ(reply.find("127.0.0.1"), std::string::npos);
        EXPECT_EQ(reply.find("localhost"), std::string::npos);
    };
    // A connection that was in use when the backend went away, then fresh ones.
    check(before, {"GET", "bi:addr"});
    check(before, {"SET", "bi:addr", "2"});
    raw_conn fresh(proxy_->port());
    check(fresh, {"GET", "bi:addr"});
    check(fresh, {"INCR", "bi:n"});
    check(fresh, {"BLPOP", "bi:list", "1"});
    check(fresh, {"WATCH", "bi:addr"});
    raw_conn multi(proxy_->port());
    check(multi, {"MULTI"});
    raw_conn admin(proxy_->port());
    check(admin, {"DBSIZE"});
    check(admin, {"INFO", "server"});

    primary_.start();
    std::string last;
    EXPECT_TRUE(eventually(
        [&] {
            raw_conn c(proxy_->port());
            last = c.call({"SET", "bi:addr", "3"});
            return last == "+OK\r\n";
        },
        10s))
        << "the proxy did not recover, last reply " << printable(last);
    expect_serving("the primary came back");
}

}  // namespace
}  // namespace respite::test

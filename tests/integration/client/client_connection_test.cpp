// One RESP3 connection carrying pub/sub pushes and pipelined replies at the same time: pushes
// arrive between replies (and inside a pipeline's replies) and never take a reply's place.
#include <asio/use_future.hpp>

#include <respite/client/connection.hpp>

#include "common.hpp"

using namespace respite;
using namespace respite::test;
using client::cmd;

TEST(connection, pushes_interleave_with_pipelined_replies_on_one_resp3_connection) {
    redis_server s;
    asio::io_context ioc;
    client::connection_config cc;
    cc.host = s.host();
    cc.port = s.port();
    auto conn = client::connection::create(ioc.get_executor(), cc);
    int messages = 0;
    conn->set_push_handler([&](resp::value&& v) {
        if (v.size() == 3 && v[0].str() == "message")
            ++messages;
    });
    conn->start();
    bool subscribed = false;
    conn->execute_pubsub(cmd("SUBSCRIBE", "mix"),
                         [&](std::error_code ec, std::vector<resp::value>& r) {
                             subscribed = !ec && !r.empty() && !r[0].is_error();
                         });
    ASSERT_TRUE(run_until(ioc, [&] { return subscribed; }));
    ASSERT_EQ(conn->protocol(), 3);

    // Another client publishes while this connection runs pipelines of INCRs.
    client::client publisher(config_for(s));
    constexpr int published = 5000;
    client::request pubs;
    for (int i = 0; i < published; ++i)
        pubs.push("PUBLISH", "mix", i);
    auto pub_done = publisher.async_exec(std::move(pubs), asio::use_future);

    constexpr int batches = 200, per_batch = 100;
    int next_expected = 1, wrong = 0, finished = 0;
    for (int b = 0; b < batches; ++b) {
        client::request r;
        for (int i = 0; i < per_batch; ++i)
            r.push("INCR", "mixed-counter");
        conn->execute(r, [&](std::error_code ec, std::vector<resp::value>& replies) {
            ++finished;
            if (ec || replies.size() != per_batch) {
                ++wrong;
                return;
            }
            for (auto& v : replies) {
                if (v.type() != resp::type::integer || v.integer() != next_expected++)
                    ++wrong;
            }
        });
    }
    ASSERT_TRUE(run_until(ioc, [&] { return finished == batches && messages == published; }))
        << "finished=" << finished << " messages=" << messages;
    EXPECT_EQ(wrong, 0);
    auto pr = get(pub_done);
    ASSERT_TRUE(pr);
    for (auto& v : *pr)
        EXPECT_EQ(v.integer(), 1);  // one subscriber received each
    conn->close();
}

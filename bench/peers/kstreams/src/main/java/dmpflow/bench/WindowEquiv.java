package dmpflow.bench;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KGroupedStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.SlidingWindows;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.state.SessionStore;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The Kafka Streams side of dmpflow's equivalence test
 * (tests/integration/test_kstreams_equivalence.py): the windows of the
 * test's configuration, each computed by plain Kafka Streams DSL, with
 * final results the classic way (suppress(untilWindowCloses)).
 *
 * <pre>
 *   input:   raw Avro events (schemas/event.avsc), Kafka key = user_id
 *   time:    the event's ts field
 *   measure: score = 0.7*price + 0.3*quantity
 *   windows: --window NAME:tumbling:SIZE:GRACE, NAME:hopping:SIZE:ADVANCE:GRACE,
 *            NAME:sliding:DIFFERENCE:GRACE, NAME:session:GAP:GRACE (ms)
 *   result:  schemas/window_result.avsc per (key, window): count, sum, min,
 *            max, mean; start and end as Kafka Streams' Window has them (a
 *            session's and a sliding window's end is inclusive)
 * </pre>
 *
 * Each window runs in its own KafkaStreams instance (application id
 * APP-NAME), so that Kafka Streams' dropped-records metric, which is per
 * task, is per window definition; at exit (SIGTERM) their totals go to
 * --metrics-file as JSON {"NAME": n, ...}.
 *
 * Stores and the suppression buffer have no changelog (the test does not
 * restart the application; with a changelog every update of every window
 * is also produced, which made the run several times slower).
 *
 * The record cache is off (statestore.cache.max.bytes = 0 and
 * withCachingDisabled): with it, a store lookup also sees cached windows
 * its RocksDB segments no longer return, so results at the retention
 * boundary depend on when the cache was flushed (docs/WINDOWS.md). The
 * aggregate (Agg) is immutable: Kafka Streams hands the aggregate of one
 * window to create another (a sliding window's right window), so an
 * aggregator that mutates its argument corrupts that copy.
 *
 * Usage: java -cp kstreams-bench.jar dmpflow.bench.WindowEquiv --bootstrap HOST:PORT
 *          --input TOPIC --output TOPIC --app-id ID --state-dir DIR
 *          --event-schema FILE --result-schema FILE --metrics-file FILE
 *          --window SPEC [--window SPEC]...
 */
public final class WindowEquiv {

    /** One --window NAME:KIND:PARAMS... */
    static final class Spec {
        final String name, kind;
        final long[] p;

        Spec(String s) {
            String[] f = s.split(":");
            if (f.length < 3) usage("bad --window " + s);
            name = f[0];
            kind = f[1];
            p = new long[f.length - 2];
            for (int i = 2; i < f.length; i++) p[i - 2] = Long.parseLong(f[i]);
            int want = kind.equals("hopping") ? 3 : 2;
            if (p.length != want || !List.of("tumbling", "hopping", "sliding", "session").contains(kind))
                usage("bad --window " + s);
        }
    }

    static KTable<Windowed<String>, Agg> aggregate(KGroupedStream<String, Double> g, Spec w) {
        Agg.AggSerde serde = new Agg.AggSerde();
        switch (w.kind) {
            case "tumbling":
            case "hopping": {
                TimeWindows tw = TimeWindows.ofSizeAndGrace(Duration.ofMillis(w.p[0]),
                        Duration.ofMillis(w.p[w.p.length - 1]));
                if (w.kind.equals("hopping")) tw = tw.advanceBy(Duration.ofMillis(w.p[1]));
                return g.windowedBy(tw).aggregate(Agg::empty, (k, v, a) -> a.add(v),
                        Materialized.<String, Agg, WindowStore<Bytes, byte[]>>with(Serdes.String(), serde)
                                .withCachingDisabled().withLoggingDisabled());
            }
            case "sliding":
                return g.windowedBy(SlidingWindows.ofTimeDifferenceAndGrace(Duration.ofMillis(w.p[0]),
                                Duration.ofMillis(w.p[1])))
                        .aggregate(Agg::empty, (k, v, a) -> a.add(v),
                                Materialized.<String, Agg, WindowStore<Bytes, byte[]>>with(Serdes.String(), serde)
                                        .withCachingDisabled().withLoggingDisabled());
            default:
                return g.windowedBy(SessionWindows.ofInactivityGapAndGrace(Duration.ofMillis(w.p[0]),
                                Duration.ofMillis(w.p[1])))
                        .aggregate(Agg::empty, (k, v, a) -> a.add(v), (k, a, b) -> a.merge(b),
                                Materialized.<String, Agg, SessionStore<Bytes, byte[]>>with(Serdes.String(), serde)
                                        .withCachingDisabled().withLoggingDisabled());
        }
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> o = new LinkedHashMap<>();
        List<Spec> specs = new ArrayList<>();
        for (int i = 0; i < args.length; i += 2) {
            if (i + 1 >= args.length) usage("missing value after " + args[i]);
            if (args[i].equals("--window")) specs.add(new Spec(args[i + 1]));
            else o.put(args[i], args[i + 1]);
        }
        for (String r : List.of("--bootstrap", "--input", "--output", "--app-id", "--state-dir",
                "--event-schema", "--result-schema", "--metrics-file"))
            if (!o.containsKey(r)) usage(r + " is required");
        if (specs.isEmpty()) usage("--window is required");

        Schema evSchema = new Schema.Parser().parse(new File(o.get("--event-schema")));
        WindowAgg.ResultEncoder enc = new WindowAgg.ResultEncoder(
                new Schema.Parser().parse(new File(o.get("--result-schema"))));
        Map<String, KafkaStreams> all = new LinkedHashMap<>();
        for (Spec w : specs) {
            Properties p = new Properties();
            p.put(StreamsConfig.APPLICATION_ID_CONFIG, o.get("--app-id") + "-" + w.name);
            p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, o.get("--bootstrap"));
            p.put(StreamsConfig.STATE_DIR_CONFIG, o.get("--state-dir") + "/" + w.name);
            p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
            p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0L);
            p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
            StreamsBuilder b = new StreamsBuilder();
            KGroupedStream<String, Double> g = b
                    .stream(o.get("--input"), Consumed.with(Serdes.String(), new WindowAgg.EventSerde(evSchema))
                            .withTimestampExtractor(new WindowAgg.TsExtractor()))
                    .mapValues(ev -> 0.7 * (Double) ev.get("price") + 0.3 * (Integer) ev.get("quantity"))
                    .groupByKey(Grouped.with(Serdes.String(), Serdes.Double()));
            aggregate(g, w).suppress(Suppressed.untilWindowCloses(
                            Suppressed.BufferConfig.unbounded().withLoggingDisabled()))
                    .toStream()
                    .map((wk, agg) -> KeyValue.pair(wk.key(),
                            enc.encode(w.name, w.kind, wk, agg.count, agg.sum, agg.min, agg.max)))
                    .to(o.get("--output"), Produced.with(Serdes.String(), Serdes.ByteArray()));
            all.put(w.name, new KafkaStreams(b.build(), p));
        }

        CountDownLatch done = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            writeDropped(all, new File(o.get("--metrics-file")));
            all.values().forEach(s -> s.close(Duration.ofSeconds(30)));
            done.countDown();
        }));
        for (KafkaStreams s : all.values()) {
            s.setUncaughtExceptionHandler(e -> {
                System.err.println("window-equiv: " + e);
                return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
                        .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
            });
            s.start();
        }
        System.err.println("window-equiv: started " + all.keySet());
        done.await();
    }

    /** Kafka Streams' dropped-records-total summed over each instance's tasks. */
    static void writeDropped(Map<String, KafkaStreams> all, File out) {
        StringBuilder sb = new StringBuilder("{");
        for (Map.Entry<String, KafkaStreams> e : all.entrySet()) {
            double n = 0;
            for (Map.Entry<MetricName, ? extends Metric> m : e.getValue().metrics().entrySet())
                if (m.getKey().name().equals("dropped-records-total")
                        && m.getKey().group().equals("stream-task-metrics"))
                    n += ((Number) m.getValue().metricValue()).doubleValue();
            sb.append(sb.length() > 1 ? ", " : "").append('"').append(e.getKey()).append("\": ")
                    .append((long) n);
        }
        try {
            Files.writeString(out.toPath(), sb.append("}\n").toString());
        } catch (IOException ex) {
            throw new UncheckedIOException(ex);
        }
    }

    private static void usage(String msg) {
        System.err.println("window-equiv: " + msg);
        System.err.println("usage: java -cp kstreams-bench.jar dmpflow.bench.WindowEquiv --bootstrap HOST:PORT "
                + "--input TOPIC --output TOPIC --app-id ID --state-dir DIR --event-schema FILE "
                + "--result-schema FILE --metrics-file FILE --window NAME:KIND:PARAMS...");
        System.exit(2);
    }
}

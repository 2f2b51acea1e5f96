package dmpflow.bench;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.EmitStrategy;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindowedKStream;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.processor.StateRestoreListener;
import org.apache.kafka.streams.processor.TimestampExtractor;

/**
 * The Kafka Streams peer of dmpflow's benchmark. It computes what
 * config/dmpflow.conf computes:
 *
 * <pre>
 *   input:   raw Avro events (schemas/event.avsc), Kafka key = user_id
 *   time:    the event's ts field (event time)
 *   measure: score = 0.7*price + 0.3*quantity
 *   window:  tumbling, size and grace from the command line, per key
 *   result:  count, sum, min, max, mean, once, when the window closes
 *            (stream time >= end + grace), as an Avro WindowResult
 *            (schemas/window_result.avsc) keyed by the key
 * </pre>
 *
 * The aggregate is keyed by the Kafka key, which the producer (dmpflow gen)
 * sets to user_id: groupByKey() then needs no repartition topic, which is
 * what a Kafka Streams developer would write for a topic keyed this way.
 * stddev is not computed (written as NaN); dmpflow's extra work there is not
 * asked of the peer.
 *
 * Usage: java -jar kstreams-bench.jar --bootstrap HOST:PORT --input TOPIC
 *          --output TOPIC --app-id ID --state-dir DIR --event-schema FILE
 *          --result-schema FILE [--size-ms 60000] [--grace-ms 5000]
 *          [--threads N] [--emit suppress|on-window-close] [--set k=v]...
 *
 * --emit suppress (default): aggregate (with the record cache) then
 * suppress(untilWindowCloses(unbounded())), the classic final-result recipe.
 * --emit on-window-close: emitStrategy(EmitStrategy.onWindowClose()) (KIP-825).
 * Both give the same results; on this benchmark on-window-close used about
 * four times the CPU of suppress (200 k events: 43 vs 10 CPU s), so the
 * benchmark runs suppress.
 *
 * --set passes any StreamsConfig / client property (overriding the
 * throughput defaults below). Stops cleanly on SIGTERM/SIGINT.
 *
 * Each state store restore (from its changelog, at startup or on a move)
 * is logged on stderr with its wall-clock bounds in epoch ms, which
 * bench/run.py's restore phase reads:
 * "kstreams-bench: restored STORE [P] N records from T0 to T1"; and so is
 * each state change of the application ("kstreams-bench: state RUNNING at T").
 */
public final class WindowAgg {

    private static final String WINDOW_NAME = "per_minute";
    private static final String MEASURE_NAME = "score";

    static final class EventSerde implements Serde<GenericRecord> {
        private final GenericDatumReader<GenericRecord> reader;
        /* The serde is shared by the stream threads; decoders are not. */
        private final ThreadLocal<BinaryDecoder> decoder = new ThreadLocal<>();

        EventSerde(Schema schema) {
            reader = new GenericDatumReader<>(schema);
        }

        @Override
        public Serializer<GenericRecord> serializer() {
            throw new UnsupportedOperationException("input only");
        }

        @Override
        public Deserializer<GenericRecord> deserializer() {
            return (topic, bytes) -> {
                if (bytes == null) return null;
                BinaryDecoder d = DecoderFactory.get().binaryDecoder(bytes, decoder.get());
                decoder.set(d);
                try {
                    return reader.read(null, d);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            };
        }
    }

    /** Event time = the ts field (timestamp-millis, read as a long). */
    public static final class TsExtractor implements TimestampExtractor {
        @Override
        public long extract(ConsumerRecord<Object, Object> record, long partitionTime) {
            Object v = record.value();
            if (v instanceof GenericRecord) {
                Object ts = ((GenericRecord) v).get("ts");
                if (ts instanceof Long) return (Long) ts;
            }
            return partitionTime;
        }
    }

    /** Encodes one closed window as schemas/window_result.avsc. */
    static final class ResultEncoder {
        private final Schema schema;
        private final GenericDatumWriter<GenericRecord> writer;
        private final ThreadLocal<ByteArrayOutputStream> out =
                ThreadLocal.withInitial(() -> new ByteArrayOutputStream(256));
        private final ThreadLocal<BinaryEncoder> encoder = new ThreadLocal<>();

        ResultEncoder(Schema schema) {
            this.schema = schema;
            this.writer = new GenericDatumWriter<>(schema);
        }

        byte[] encode(Windowed<String> wk, Agg a) {
            return encode(WINDOW_NAME, "tumbling", wk, a.count, a.sum, a.min, a.max);
        }

        /** Any window of Kafka Streams, as it has its bounds (WindowEquiv). */
        byte[] encode(String window, String kind, Windowed<String> wk, long count, double sum,
                      double min, double max) {
            GenericRecord r = new GenericData.Record(schema);
            r.put("window", window);
            r.put("kind", kind);
            r.put("key", wk.key());
            r.put("start", wk.window().start());
            r.put("end", wk.window().end());
            r.put("measure", MEASURE_NAME);
            r.put("count", count);
            r.put("sum", sum);
            r.put("min", min);
            r.put("max", max);
            r.put("mean", sum / count);
            r.put("stddev", Double.NaN);
            // fields with defaults in the schema must still be set for
            // GenericDatumWriter (it does not apply defaults)
            r.put("late", 0L);
            r.put("final", true);
            ByteArrayOutputStream bos = out.get();
            bos.reset();
            BinaryEncoder e = EncoderFactory.get().binaryEncoder(bos, encoder.get());
            encoder.set(e);
            try {
                writer.write(r, e);
                e.flush();
            } catch (IOException ex) {
                throw new UncheckedIOException(ex);
            }
            return bos.toByteArray();
        }
    }

    /** Logs every store partition's restore: records and wall-clock bounds. */
    static final class RestoreLog implements StateRestoreListener {
        private final Map<String, Long> began = new ConcurrentHashMap<>();

        @Override
        public void onRestoreStart(TopicPartition tp, String store, long start, long end) {
            began.put(store + tp, System.currentTimeMillis());
        }

        @Override
        public void onBatchRestored(TopicPartition tp, String store, long batchEnd, long n) {
        }

        @Override
        public void onRestoreEnd(TopicPartition tp, String store, long total) {
            long t1 = System.currentTimeMillis();
            Long t0 = began.remove(store + tp);
            System.err.println("kstreams-bench: restored " + store + " [" + tp.partition() + "] "
                    + total + " records from " + (t0 == null ? t1 : t0) + " to " + t1);
        }
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = null, input = null, output = null, appId = null, stateDir = null;
        String eventSchema = null, resultSchema = null, emit = "suppress";
        long sizeMs = 60000, graceMs = 5000;
        int threads = Runtime.getRuntime().availableProcessors();
        Properties extra = new Properties();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (i + 1 >= args.length) usage("missing value after " + a);
            String v = args[++i];
            switch (a) {
                case "--bootstrap": bootstrap = v; break;
                case "--input": input = v; break;
                case "--output": output = v; break;
                case "--app-id": appId = v; break;
                case "--state-dir": stateDir = v; break;
                case "--event-schema": eventSchema = v; break;
                case "--result-schema": resultSchema = v; break;
                case "--size-ms": sizeMs = Long.parseLong(v); break;
                case "--grace-ms": graceMs = Long.parseLong(v); break;
                case "--threads": threads = Integer.parseInt(v); break;
                case "--emit": emit = v; break;
                case "--set": {
                    int eq = v.indexOf('=');
                    if (eq <= 0) usage("--set needs name=value");
                    extra.setProperty(v.substring(0, eq), v.substring(eq + 1));
                    break;
                }
                default: usage("unknown option " + a);
            }
        }
        if (bootstrap == null || input == null || output == null || appId == null
                || stateDir == null || eventSchema == null || resultSchema == null)
            usage("--bootstrap, --input, --output, --app-id, --state-dir, --event-schema "
                    + "and --result-schema are required");
        if (!emit.equals("suppress") && !emit.equals("on-window-close"))
            usage("--emit is suppress or on-window-close");

        Schema evSchema = new Schema.Parser().parse(new File(eventSchema));
        Schema resSchema = new Schema.Parser().parse(new File(resultSchema));

        // Throughput settings as Kafka Streams' and Confluent's tuning guides
        // recommend: one stream thread per core, a larger record cache,
        // larger producer batches with lz4, larger fetches. The commit
        // interval is left at its at-least-once default (30 s) here;
        // bench/run.py sets it to dmpflow's (--set commit.interval.ms=1000)
        // so that both make their state durable equally often.
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads);
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 64L * 1024 * 1024);
        p.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), 100);
        p.put(StreamsConfig.producerPrefix(ProducerConfig.BATCH_SIZE_CONFIG), 256 * 1024);
        p.put(StreamsConfig.producerPrefix(ProducerConfig.COMPRESSION_TYPE_CONFIG), "lz4");
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.FETCH_MIN_BYTES_CONFIG), 100_000);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.MAX_POLL_RECORDS_CONFIG), 2000);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        if (emit.equals("on-window-close")) {
            // onWindowClose checks for closed windows at most once per
            // this interval (default 1 s of wall time), and only while
            // records arrive: with the default, the windows closed by a
            // partition's last record may never be emitted. 0: check on
            // every record (a cheap comparison unless a window closed).
            p.put(StreamsConfig.InternalConfig.EMIT_INTERVAL_MS_KSTREAMS_WINDOWED_AGGREGATION, 0L);
        }
        p.putAll(extra);

        StreamsBuilder b = new StreamsBuilder();
        TimeWindowedKStream<String, Double> windowed = b
                .stream(input, Consumed.with(Serdes.String(), new EventSerde(evSchema))
                        .withTimestampExtractor(new TsExtractor()))
                .mapValues(ev -> 0.7 * (Double) ev.get("price") + 0.3 * (Integer) ev.get("quantity"))
                .groupByKey(Grouped.with(Serdes.String(), Serdes.Double()))
                .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(sizeMs),
                        Duration.ofMillis(graceMs)));
        KTable<Windowed<String>, Agg> table;
        if (emit.equals("on-window-close")) {
            table = windowed.emitStrategy(EmitStrategy.onWindowClose())
                    .aggregate(Agg::empty, (k, v, agg) -> agg.add(v),
                            Materialized.with(Serdes.String(), new Agg.AggSerde()));
        } else {
            table = windowed.aggregate(Agg::empty, (k, v, agg) -> agg.add(v),
                            Materialized.with(Serdes.String(), new Agg.AggSerde()))
                    .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()));
        }
        ResultEncoder enc = new ResultEncoder(resSchema);
        table.toStream()
                .map((wk, agg) -> KeyValue.pair(wk.key(), enc.encode(wk, agg)))
                .to(output, Produced.with(Serdes.String(), Serdes.ByteArray()));

        KafkaStreams streams = new KafkaStreams(b.build(), p);
        streams.setGlobalStateRestoreListener(new RestoreLog());
        streams.setStateListener((now, before) -> System.err.println(
                "kstreams-bench: state " + now + " at " + System.currentTimeMillis()));
        CountDownLatch done = new CountDownLatch(1);
        streams.setUncaughtExceptionHandler(e -> {
            System.err.println("kstreams-bench: " + e);
            done.countDown();
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
                    .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(30));
            done.countDown();
        }));
        streams.start();
        System.err.println("kstreams-bench: started " + appId + " (" + threads
                + " stream threads, emit " + emit + ")");
        done.await();
    }

    private static void usage(String msg) {
        System.err.println("kstreams-bench: " + msg);
        System.err.println("usage: java -jar kstreams-bench.jar --bootstrap HOST:PORT --input TOPIC "
                + "--output TOPIC --app-id ID --state-dir DIR --event-schema FILE "
                + "--result-schema FILE [--size-ms N] [--grace-ms N] [--threads N] "
                + "[--emit suppress|on-window-close] [--set name=value]...");
        System.exit(2);
    }
}

package dmpflow.bench;

import java.nio.ByteBuffer;

import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serializer;

/**
 * Count, sum, min, max of one (key, window): the aggregate of both peers
 * (WindowAgg, WindowEquiv); 32 bytes in a store. Immutable: Kafka Streams
 * hands the aggregate of one window to create another (a sliding window's
 * right window from its left one), so an aggregator that mutated its
 * argument would corrupt that copy.
 */
final class Agg {
    final long count;
    final double sum, min, max;

    Agg(long count, double sum, double min, double max) {
        this.count = count;
        this.sum = sum;
        this.min = min;
        this.max = max;
    }

    static Agg empty() {
        return new Agg(0, 0.0, Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY);
    }

    Agg add(double v) {
        return new Agg(count + 1, sum + v, Math.min(min, v), Math.max(max, v));
    }

    /** Two sessions merged into one. */
    Agg merge(Agg o) {
        return new Agg(count + o.count, sum + o.sum, Math.min(min, o.min), Math.max(max, o.max));
    }

    static final class AggSerde implements Serde<Agg> {
        @Override
        public Serializer<Agg> serializer() {
            return (topic, a) -> a == null ? null
                    : ByteBuffer.allocate(32).putLong(a.count).putDouble(a.sum)
                            .putDouble(a.min).putDouble(a.max).array();
        }

        @Override
        public Deserializer<Agg> deserializer() {
            return (topic, bytes) -> {
                if (bytes == null) return null;
                ByteBuffer b = ByteBuffer.wrap(bytes);
                return new Agg(b.getLong(), b.getDouble(), b.getDouble(), b.getDouble());
            };
        }
    }
}

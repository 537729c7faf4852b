// Transactional produce throughput: <records> records of <bytes> bytes in transactions of
// <txnSize> records (beginTransaction, sends, commitTransaction), spread over the topic's
// partitions by the default partitioner. Prints one JSON line with the rates, from the first
// beginTransaction to the last commit's return. A measurement for reports, not a test.

import java.util.Properties;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class TxnBench {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1];
        long records = Long.parseLong(args[2]);
        int txnSize = Integer.parseInt(args[3]);
        int bytes = Integer.parseInt(args[4]);
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "txn-bench-" + topic);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.put(ProducerConfig.BATCH_SIZE_CONFIG, "262144");
        p.put(ProducerConfig.BUFFER_MEMORY_CONFIG, "134217728");
        byte[] value = new byte[bytes];
        for (int i = 0; i < bytes; i++) {
            value[i] = (byte) ('a' + i % 26);
        }
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            producer.initTransactions();
            long sent = 0, txns = 0;
            long start = System.nanoTime();
            while (sent < records) {
                producer.beginTransaction();
                long n = Math.min(txnSize, records - sent);
                for (long i = 0; i < n; i++) {
                    producer.send(new ProducerRecord<>(topic, null, value));
                }
                producer.commitTransaction();
                sent += n;
                txns++;
            }
            double s = (System.nanoTime() - start) / 1e9;
            System.out.printf("{\"records\": %d, \"txn_size\": %d, \"transactions\": %d, "
                + "\"seconds\": %.3f, \"records_per_s\": %.0f, \"mb_per_s\": %.1f, "
                + "\"txn_per_s\": %.1f}%n",
                sent, txnSize, txns, s, sent / s, sent * (double) bytes / s / 1e6, txns / s);
        }
    }
}

// A transactional producer (kafka-clients 4.x) driven one command at a time over stdin, for
// test_txn_delayed.py: the test holds back one of its requests in a proxy between this producer
// and the broker, lets the client time out and retry, and decides when the stale request reaches
// the broker by reading this driver's answers.
//
// Commands (one a line on stdin) and answers (one a line on stdout, the client's log at warn on
// stderr):
//
//   init                     initTransactions          ok init
//   begin                    beginTransaction          ok begin
//   send TOPIC PARTITION V   send V (UTF-8 value, no   ok send PARTITION OFFSET
//                            key) and wait for its
//                            acknowledgement
//   commit                   commitTransaction         ok commit
//   abort                    abortTransaction          ok abort
//   quit                     close the producer, exit  ok quit
//
// A command that throws answers "error CLASS MESSAGE" (the cause's class for a failed send);
// the driver keeps reading commands, so the test decides what happens after an error.
//
// request.timeout.ms is short so that a request held by the proxy times out (the client closes
// that connection and retries on a new one), while delivery.timeout.ms, transaction.timeout.ms
// and max.block.ms leave room for the retry. One request in flight per connection keeps the
// order of requests on the wire the order of the commands.
//
//   java -cp '.deps/java/*:CLASSES' TxnDelay BOOTSTRAP TXN_ID CLIENT_ID

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class TxnDelay {
    static final String REQUEST_TIMEOUT_MS = "3000";
    static final String DELIVERY_TIMEOUT_MS = "30000";
    static final String TRANSACTION_TIMEOUT_MS = "60000";
    static final String MAX_BLOCK_MS = "30000";

    public static void main(String[] args) throws IOException {
        if (args.length != 3) {
            System.err.println("usage: TxnDelay BOOTSTRAP TXN_ID CLIENT_ID");
            System.exit(2);
        }
        if (System.getProperty("org.slf4j.simpleLogger.defaultLogLevel") == null) {
            System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        }
        KafkaProducer<byte[], byte[]> producer = newProducer(args[0], args[1], args[2]);
        BufferedReader in =
                new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String[] words = line.trim().split(" ");
            if (words[0].isEmpty()) {
                continue;
            }
            try {
                String answer = run(producer, words);
                emit("ok " + answer);
            } catch (ExecutionException e) {
                emit(error(e.getCause() != null ? e.getCause() : e));
            } catch (Exception e) {
                emit(error(e));
            }
            if (words[0].equals("quit")) {
                return;
            }
        }
        producer.close(Duration.ZERO);
    }

    static String run(KafkaProducer<byte[], byte[]> producer, String[] words)
            throws ExecutionException, InterruptedException {
        switch (words[0]) {
            case "init":
                producer.initTransactions();
                return "init";
            case "begin":
                producer.beginTransaction();
                return "begin";
            case "send": {
                if (words.length != 4) {
                    throw new IllegalArgumentException("send TOPIC PARTITION VALUE");
                }
                ProducerRecord<byte[], byte[]> record = new ProducerRecord<>(words[1],
                        Integer.parseInt(words[2]), null,
                        words[3].getBytes(StandardCharsets.UTF_8));
                RecordMetadata md = producer.send(record).get();
                return "send " + md.partition() + " " + md.offset();
            }
            case "commit":
                producer.commitTransaction();
                return "commit";
            case "abort":
                producer.abortTransaction();
                return "abort";
            case "quit":
                producer.close(Duration.ofSeconds(5));
                return "quit";
            default:
                throw new IllegalArgumentException("unknown command " + words[0]);
        }
    }

    static KafkaProducer<byte[], byte[]> newProducer(String bootstrap, String txnId,
                                                     String clientId) {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.CLIENT_ID_CONFIG, clientId);
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, "1");
        props.put(ProducerConfig.LINGER_MS_CONFIG, "0");
        props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, REQUEST_TIMEOUT_MS);
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, DELIVERY_TIMEOUT_MS);
        props.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, TRANSACTION_TIMEOUT_MS);
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, MAX_BLOCK_MS);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG,
                ByteArraySerializer.class.getName());
        return new KafkaProducer<>(props);
    }

    static String error(Throwable e) {
        String message = String.valueOf(e.getMessage()).replace('\n', ' ');
        return "error " + e.getClass().getSimpleName() + " " + message;
    }

    static void emit(String line) {
        System.out.println(line);
        System.out.flush();
    }
}

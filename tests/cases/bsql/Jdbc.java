// BSQL with PostgreSQL's JDBC driver (Debian's libpostgresql-jdbc-java), run as a
// single-file program: java -cp /usr/share/java/postgresql.jar Jdbc.java <jdbc url>
// Prints "JDBC OK" when every check held; any failure throws (non-zero exit).

import java.math.BigDecimal;
import java.sql.*;

public class Jdbc {
    static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }

    public static void main(String[] args) throws Exception {
        String url = args[0];
        try (Connection c = DriverManager.getConnection(url, "yugabyte", "yugabyte")) {
            DatabaseMetaData md = c.getMetaData();
            check(md.getDatabaseProductName().equals("PostgreSQL"), "product " + md.getDatabaseProductName());
            try (Statement st = c.createStatement()) {
                st.execute("drop table if exists jdbc_t");
                st.execute("create table jdbc_t (id bigint primary key, name text not null, "
                        + "score double precision, ok boolean, amount numeric(10,2), at timestamp, "
                        + "day date, data bytea, email varchar(40) unique)");
            }
            // Prepared statements (server-side after the fifth use), batches.
            try (PreparedStatement ps = c.prepareStatement(
                    "insert into jdbc_t (id, name, score, ok, amount, at, day, data, email) "
                            + "values (?, ?, ?, ?, ?, ?, ?, ?, ?)")) {
                for (long i = 1; i <= 20; i++) {
                    ps.setLong(1, i);
                    ps.setString(2, "n" + i);
                    ps.setDouble(3, i / 4.0);
                    ps.setBoolean(4, i % 2 == 0);
                    ps.setBigDecimal(5, new BigDecimal(i + ".25"));
                    ps.setTimestamp(6, Timestamp.valueOf("2026-01-02 03:04:05"));
                    ps.setDate(7, Date.valueOf("2026-01-02"));
                    ps.setBytes(8, new byte[] {1, 2, (byte) i});
                    ps.setString(9, "u" + i + "@x");
                    if (i <= 10) {
                        check(ps.executeUpdate() == 1, "insert " + i);
                    } else {
                        ps.addBatch();
                    }
                }
                int[] counts = ps.executeBatch();
                check(counts.length == 10, "batch size " + counts.length);
            }
            try (PreparedStatement ps = c.prepareStatement(
                    "select name, score, ok, amount, at, day, data from jdbc_t where id = ?")) {
                for (int round = 0; round < 7; round++) {
                    ps.setLong(1, 7);
                    try (ResultSet rs = ps.executeQuery()) {
                        check(rs.next(), "row 7");
                        check(rs.getString(1).equals("n7"), "name");
                        check(rs.getDouble(2) == 1.75, "score");
                        check(!rs.getBoolean(3), "ok");
                        check(rs.getBigDecimal(4).compareTo(new BigDecimal("7.25")) == 0, "amount " + rs.getBigDecimal(4));
                        check(rs.getTimestamp(5).equals(Timestamp.valueOf("2026-01-02 03:04:05")), "at " + rs.getTimestamp(5));
                        check(rs.getDate(6).toString().equals("2026-01-02"), "day " + rs.getDate(6));
                        check(rs.getBytes(7)[2] == 7, "data");
                        ResultSetMetaData m = rs.getMetaData();
                        check(m.getColumnCount() == 7, "columns");
                        check(m.getColumnName(1).equals("name"), "column name");
                        check(m.getColumnType(2) == Types.DOUBLE, "type of score " + m.getColumnType(2));
                        check(!rs.next(), "one row");
                    }
                }
            }
            try (Statement st = c.createStatement();
                 ResultSet rs = st.executeQuery("select count(*), sum(id) from jdbc_t where ok")) {
                check(rs.next() && rs.getLong(1) == 10 && rs.getLong(2) == 110, "aggregate");
            }
            // Errors carry PostgreSQL's SQLSTATE.
            try (Statement st = c.createStatement()) {
                st.executeUpdate("insert into jdbc_t (id, name, email) values (1, 'dup', 'z@x')");
                check(false, "duplicate key accepted");
            } catch (SQLException e) {
                check("23505".equals(e.getSQLState()), "state " + e.getSQLState());
            }
            try (Statement st = c.createStatement()) {
                st.executeUpdate("insert into jdbc_t (id, name, email) values (99, 'dup', 'u1@x')");
                check(false, "duplicate unique value accepted");
            } catch (SQLException e) {
                check("23505".equals(e.getSQLState()), "state " + e.getSQLState());
            }
            try (Statement st = c.createStatement()) {
                st.executeQuery("select * from jdbc_missing");
                check(false, "missing table");
            } catch (SQLException e) {
                check("42P01".equals(e.getSQLState()), "state " + e.getSQLState());
            }
            // Transactions: rollback discards, commit keeps.
            c.setAutoCommit(false);
            try (Statement st = c.createStatement()) {
                st.executeUpdate("update jdbc_t set score = 100 where id = 1");
                c.rollback();
                st.executeUpdate("update jdbc_t set score = 200 where id = 2");
                c.commit();
            }
            c.setAutoCommit(true);
            try (Statement st = c.createStatement();
                 ResultSet rs = st.executeQuery("select id, score from jdbc_t where id <= 2 order by id")) {
                check(rs.next() && rs.getDouble(2) == 0.25, "rolled back");
                check(rs.next() && rs.getDouble(2) == 200, "committed");
            }
            // Metadata lookups drivers and tools make.
            try (ResultSet rs = md.getTables(null, "public", "jdbc_t", new String[] {"TABLE"})) {
                check(rs.next() && rs.getString("TABLE_NAME").equals("jdbc_t"), "getTables");
            }
            try (Statement st = c.createStatement()) {
                st.execute("drop table jdbc_t");
            }
        }
        System.out.println("JDBC OK");
    }
}

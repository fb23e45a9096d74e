using System.Net;
using System.Net.Http.Json;
using System.Text;
using Linq2DbTestKit.AspNetCore;
using Linq2DbTestKit.MSTest;
using LinqToDB;
using LinqToDB.Async;
using Microsoft.Extensions.DependencyInjection;
using NotesApi.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using NotesApi.Testing;

namespace NotesApi.MSTestTests;

/// <summary>
/// What the tests of the API share. The API's requests and the tests' own code run in each test's scope, although the
/// application builds every linq2db context itself: what it commits is visible to the test, and nothing is left after it,
/// checked from outside. MSTest runs the tests below in parallel ([assembly: Parallelize]).
/// </summary>
public abstract class NotesTest : DatabaseTest
{
    /// <summary>A prefix of this test's titles and tags: tests run in parallel, and none sees another's rows.</summary>
    readonly string _tag = $"t{Guid.NewGuid():N}"[..12];

    HttpClient? _client;

    protected HttpClient Api => _client ??= NotesApp.Factory.CreateClient(Scope);

    [TestCleanup]
    public void DisposeClient() => _client?.Dispose();

    protected string Name(string suffix) => $"{_tag}-{suffix}";

    protected async Task<Note> CreateAsync(string title, params string[] tags)
    {
        var response = await Api.PostAsJsonAsync("/api/notes", new { title, tags });
        Assert.AreEqual(HttpStatusCode.Created, response.StatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<Note>())!;
    }

    protected async Task EndScopeAndAssertNothingLeftAsync()
    {
        await Scope.DisposeAsync();
        Assert.AreEqual(0, await NotesApp.CountOutsideAsync("notes", "title", _tag));
        Assert.AreEqual(0, await NotesApp.CountOutsideAsync("tags", "name", _tag));
    }
}

/// <summary>Notes posted, read and deleted through the API and the application's own code.</summary>
[TestClass]
public sealed class NoteTests : NotesTest
{
    [TestMethod]
    public async Task A_note_posted_is_found_by_id_and_by_tag_and_gone_after_the_test()
    {
        var created = await CreateAsync(Name("first"), Name("work"), NotesDatabase.DefaultTag);

        var fetched = await Api.GetFromJsonAsync<Note>($"/api/notes/{created.Id}");
        var byTag = await Api.GetFromJsonAsync<Note[]>($"/api/notes?tag={Name("work")}");

        Assert.AreEqual((created.Id, created.Title), (fetched!.Id, fetched.Title));
        CollectionAssert.AreEqual(new[] { NotesDatabase.DefaultTag, Name("work") }, created.Tags.ToArray());
        CollectionAssert.AreEqual(new[] { Name("first") }, byTag!.Select(n => n.Title).ToArray());
        await EndScopeAndAssertNothingLeftAsync();
    }

    [TestMethod]
    public async Task A_deleted_note_is_gone_for_the_test_and_a_second_delete_is_404()
    {
        var created = await CreateAsync(Name("doomed"));

        var first = await Api.DeleteAsync($"/api/notes/{created.Id}");
        var second = await Api.DeleteAsync($"/api/notes/{created.Id}");
        var fetched = await Api.GetAsync($"/api/notes/{created.Id}");

        Assert.AreEqual(HttpStatusCode.NoContent, first.StatusCode);
        Assert.AreEqual(HttpStatusCode.NotFound, second.StatusCode);
        Assert.AreEqual(HttpStatusCode.NotFound, fetched.StatusCode);
    }

    [TestMethod]
    public async Task The_test_reads_with_the_applications_own_context_what_the_api_wrote()
    {
        var created = await CreateAsync(Name("via-api"), Name("shared"));

        // The application's context on linq2db's default configuration, built in test code: it joins the test's scope.
        await using var db = new NotesDb();
        var tag = await db.Tags.SingleAsync(t => t.Name == Name("shared"));

        Assert.AreEqual(1, await db.NoteTags.CountAsync(nt => nt.NoteId == created.Id && nt.TagId == tag.Id));
        await EndScopeAndAssertNothingLeftAsync();
    }

    [TestMethod]
    public async Task The_api_reads_what_the_test_wrote_through_the_applications_repository()
    {
        var repository = NotesApp.Factory.Services.GetRequiredService<NoteRepository>();
        var created = await repository.CreateAsync(Name("via-repository"), "body", [Name("direct")], CancellationToken.None);

        var listed = await Api.GetFromJsonAsync<Note[]>($"/api/notes?tag={Name("direct")}");

        CollectionAssert.AreEqual(new[] { created.Id }, listed!.Select(n => n.Id).ToArray());
        await EndScopeAndAssertNothingLeftAsync();
    }
}

/// <summary>Tags: the one the application seeds at start-up, and one that concurrent requests create.</summary>
[TestClass]
public sealed class TagTests : NotesTest
{
    [TestMethod]
    public async Task The_tag_seeded_at_start_up_is_there_and_a_note_reuses_it()
    {
        await CreateAsync(Name("seeded"), NotesDatabase.DefaultTag);

        var tags = await Api.GetFromJsonAsync<TagCount[]>("/api/tags");

        CollectionAssert.AreEqual(new[] { 1 }, tags!.Where(t => t.Name == NotesDatabase.DefaultTag).Select(t => t.Notes).ToArray());
    }

    [TestMethod]
    public async Task Concurrent_requests_creating_the_same_new_tag_make_it_once()
    {
        var responses = await Task.WhenAll(Enumerable.Range(1, 5).Select(i =>
            Api.PostAsJsonAsync("/api/notes", new { title = Name($"concurrent-{i}"), tags = new[] { Name("together") } })));

        CollectionAssert.AreEqual(Enumerable.Repeat(HttpStatusCode.Created, 5).ToArray(), responses.Select(r => r.StatusCode).ToArray());
        var notes = await Api.GetFromJsonAsync<Note[]>($"/api/notes?tag={Name("together")}");
        Assert.HasCount(5, notes!);
        await using var db = new NotesDb();
        Assert.AreEqual(1, await db.Tags.CountAsync(t => t.Name == Name("together")));
    }
}

/// <summary>Requests the API refuses.</summary>
[TestClass]
public sealed class ValidationTests : NotesTest
{
    [TestMethod]
    [DataRow("""{"title": ""}""")]
    [DataRow("""{"title": "   "}""")]
    [DataRow("""{"tags": ["a"]}""")]
    [DataRow("""{"title": "ok", "tags": [""]}""")]
    [DataRow("""{"title": """)]
    public async Task Bad_input_is_400_with_problem_details(string body)
    {
        var response = await Api.PostAsync("/api/notes", new StringContent(body, Encoding.UTF8, "application/json"));

        Assert.AreEqual(HttpStatusCode.BadRequest, response.StatusCode, await response.Content.ReadAsStringAsync());
        Assert.AreEqual("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [TestMethod]
    public async Task A_missing_note_is_404()
    {
        var response = await Api.GetAsync("/api/notes/987654321");

        Assert.AreEqual(HttpStatusCode.NotFound, response.StatusCode);
    }
}
